"""How a sample becomes a training sequence: the sequence layout and vocabulary (special tokens,
codebook blocks, the delay pattern), the text tokenizers, and the chat layout of one sample.
The lowest room of `ualm.train`: it imports no other."""
