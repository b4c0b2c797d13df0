"""The inference service: ONNX graphs in onnxruntime behind a FastAPI app with a web page.

Nothing here imports torch: the service needs only onnxruntime, numpy and Pillow.
"""

from genmodels.serving.app import create_app
from genmodels.serving.store import Graph, ModelStore, ServedModel

__all__ = ["Graph", "ModelStore", "ServedModel", "create_app"]
