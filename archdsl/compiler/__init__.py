"""Recipes -> ``nn.Module``; counting on the meta device."""
