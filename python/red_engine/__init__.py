"""red's PyTorch training engine: the Python side of src/train/engines/torch.ts.

red starts it as `python -m red_engine --socket PATH` (PYTHONPATH pointing at this folder's
parent); rank 0 serves red's requests over that Unix socket and shared-memory files, and drives
the other ranks through torch.distributed. See README.md "Training on GPUs".
"""

MIN_TORCH = (1, 13)
