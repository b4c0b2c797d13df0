"""How the conv stacks follow the image size: the arithmetic the networks (genmodels.nn) are built
with and the params schema (genmodels.config, which imports no torch) checks sizes with.

A stack halves each side once per stride-2 stage. It takes as many stages as the size needs
(halvings) or as many as it is given widths, whichever is more; the widths it is not given
double away from the image, up to MAX_WIDTH.
"""

from __future__ import annotations

from collections.abc import Sequence

MIN_SIDE = 4  # a side is halved while it is even and its half is still at least this
MAX_WIDTH = 512  # widths added by doubling stop growing here


def halvings(side: int) -> int:
    """The stride-2 stages a side needs: 28 -> 7 in 2, 32 -> 4 in 3, 96 -> 6 in 4, 4 in 0."""
    count = 0
    while side % 2 == 0 and side // 2 >= MIN_SIDE:
        side //= 2
        count += 1
    return count


def needed_stages(hw: Sequence[int]) -> int:
    """The stages every side allows (the fewer of the two when H != W)."""
    return min(halvings(side) for side in hw)


def stage_count(widths: Sequence[int], hw: Sequence[int]) -> int:
    """The stride-2 stages of a stack given `widths` on an image of size hw."""
    return max(len(widths), needed_stages(hw))


def divisibility_problem(hw: Sequence[int], factor: int, subject: str) -> str | None:
    """The one divisibility rule of every size check: '<subject> a side divisible by <factor>'
    when a side is not (subject ends in its verb: '3 stride-2 stages need'); None when all are."""
    if any(side % factor for side in hw):
        return f"{subject} a side divisible by {factor}"
    return None


def stack_problem(widths: Sequence[int], hw: Sequence[int]) -> str | None:
    """What keeps a stack of `widths` off an image of size hw (more widths than the size
    halves into), or None. Stages the size needs always divide it, by construction."""
    stages = stage_count(widths, hw)
    subject = f"{stages} stride-2 stage{'s need' if stages > 1 else ' needs'}"
    return divisibility_problem(hw, 2**stages, subject)


def stack_widths(widths: Sequence[int], hw: Sequence[int], *, low_to_high: bool = False
                 ) -> list[int]:  # fmt: skip
    """The widths of a stack with the stages the size needs: the given ones, and doubled ones
    where more stages are needed, added on the low-resolution side: appended to a stack from the
    image down (encoders, discriminators), prepended to a generator's (from low to high
    resolution). A size that does not divide is a ValueError (params checks name the key)."""
    problem = stack_problem(widths, hw)
    if problem is not None:
        raise ValueError(f"{problem}: the images are {'x'.join(map(str, hw))}")
    found = list(widths)
    for _ in range(needed_stages(hw) - len(found)):
        if low_to_high:
            found.insert(0, min(2 * found[0], max(found[0], MAX_WIDTH)))
        else:
            found.append(min(2 * found[-1], max(found[-1], MAX_WIDTH)))
    return found
