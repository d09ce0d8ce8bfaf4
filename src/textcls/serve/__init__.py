"""`textcls serve`: an HTTP endpoint for a trained classifier (LitServe), with a page to try it.

Nothing here imports torch at module level: a server of an exported ONNX directory (`--model_dir`) runs with ONNX
Runtime and the `tokenizers` library only.
"""
