"""Build-time conversion of checkpoints into deployable artifacts (ONNX, TensorRT plans), each with a manifest.

Heavy imports (onnx, onnxruntime, tensorrt) happen inside the functions of the submodules.
"""
