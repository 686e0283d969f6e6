"""Models the suite did not train, shipped so the `cpu` board can show one beside its own.

`digits_cnn` stands for a user's own model: another architecture, trained by a plain PyTorch
loop that knows nothing of the suite's methods, saved as safetensors, and put on the board
by a `[[models]] external = {...}` entry exactly as a user's file would be.
"""
