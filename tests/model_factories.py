"""Tiny randomly initialised models of the real classes, saved the way real weights are laid out
(a Hugging Face folder, an openai-whisper `.pt`), for tests that load them back. No downloads."""

from __future__ import annotations

import dataclasses
from pathlib import Path

WORDS = ("a dog barks twice in the distance while rain falls on a metal roof and a car passes "
         "by people talk music plays birds sing loudly softly engine hums door slams")


def tiny_clap_folder(out: Path) -> Path:
    """A ClapModel (small audio and text towers) with a byte-level BPE tokenizer trained here."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        RobertaTokenizer,
    )

    out.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([WORDS] * 4, vocab_size=400, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(out))
    tokenizer = RobertaTokenizer(vocab=str(out / "vocab.json"), merges=str(out / "merges.txt"))
    torch.manual_seed(0)
    config = ClapConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "intermediate_size": 64, "projection_dim": 16},
        audio_config={"depths": [1, 1, 1, 1], "num_attention_heads": [1, 2, 2, 4],
                      "patch_embeds_hidden_size": 16, "hidden_size": 128, "projection_dim": 16},
        projection_dim=16)
    ClapModel(config).save_pretrained(out / "model")
    ClapProcessor(feature_extractor=ClapFeatureExtractor(truncation="rand_trunc"),
                  tokenizer=tokenizer).save_pretrained(out / "model")
    return out / "model"


def tiny_whisper_checkpoint(out: Path):  # -> (Path, whisper.model.Whisper)
    """An openai-whisper checkpoint (d_model 64, 2 layers, the real multilingual vocabulary)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(0)
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2,
                           n_audio_layer=2, n_vocab=51865, n_text_ctx=64, n_text_state=64,
                           n_text_head=2, n_text_layer=2)
    model = Whisper(dims)
    with torch.no_grad():  # openai-whisper leaves this uninitialised (checkpoints fill it)
        model.decoder.positional_embedding.normal_(0, 0.02)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "tiny.pt"
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": model.state_dict()},
               checkpoint)
    return checkpoint, model.eval()
