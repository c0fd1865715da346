"""Shared bricks that blocks are made of, one concept per file."""
