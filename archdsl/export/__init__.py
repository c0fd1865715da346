"""Export a model as a standalone artifact: generated source, weights, torch.export, ONNX, manifest."""
