"""Recipes -> ``nn.Module``; counting on the meta device; the module's exported programs (``torch.export``, ONNX)
and the runtimes its latency is timed in."""
