"""Conversion of an openai-whisper `.pt` checkpoint into a Hugging Face Whisper model folder.

The key mapping follows transformers' own conversion script; the tokenizer files are built from
the vocabulary that the `openai-whisper` package bundles, so nothing is downloaded.

>>> hf_key("decoder.blocks.0.cross_attn.query.weight")
'model.decoder.layers.0.encoder_attn.q_proj.weight'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MULTILINGUAL_VOCAB = 51865
"""Checkpoints with at least this many tokens are multilingual (openai-whisper's own rule)."""

_RENAMES = (  # order matters: ".cross_attn." before ".attn."
    ("blocks", "layers"), ("mlp.0", "fc1"), ("mlp.2", "fc2"), ("mlp_ln", "final_layer_norm"),
    (".cross_attn.query", ".encoder_attn.q_proj"), (".cross_attn.key", ".encoder_attn.k_proj"),
    (".cross_attn.value", ".encoder_attn.v_proj"), (".cross_attn.out", ".encoder_attn.out_proj"),
    (".cross_attn_ln", ".encoder_attn_layer_norm"),
    (".attn.query", ".self_attn.q_proj"), (".attn.key", ".self_attn.k_proj"),
    (".attn.value", ".self_attn.v_proj"), (".attn.out", ".self_attn.out_proj"),
    (".attn_ln", ".self_attn_layer_norm"),
    ("decoder.ln.", "decoder.layer_norm."), ("encoder.ln_post.", "encoder.layer_norm."),
    ("token_embedding", "embed_tokens"),
    ("encoder.positional_embedding", "encoder.embed_positions.weight"),
    ("decoder.positional_embedding", "decoder.embed_positions.weight"),
)


def hf_key(key: str) -> str:
    for old, new in _RENAMES:
        key = key.replace(old, new)
    return f"model.{key}"


def num_languages(n_vocab: int) -> int:
    return n_vocab - 51765 - int(n_vocab >= MULTILINGUAL_VOCAB)


def hf_state_dict(state: dict[str, Any]) -> dict[str, Any]:
    """openai-whisper parameter names -> WhisperForConditionalGeneration's (output tied)."""
    return {hf_key(k): v for k, v in state.items() if k != "alignment_heads"}


def hf_config(dims: dict[str, int]) -> Any:
    from transformers import WhisperConfig

    vocab = dims["n_vocab"]
    return WhisperConfig(
        vocab_size=vocab, num_mel_bins=dims["n_mels"], d_model=dims["n_audio_state"],
        encoder_layers=dims["n_audio_layer"], encoder_attention_heads=dims["n_audio_head"],
        decoder_layers=dims["n_text_layer"], decoder_attention_heads=dims["n_text_head"],
        encoder_ffn_dim=4 * dims["n_audio_state"], decoder_ffn_dim=4 * dims["n_text_state"],
        max_source_positions=dims["n_audio_ctx"], max_target_positions=dims["n_text_ctx"],
        eos_token_id=50257 if vocab >= MULTILINGUAL_VOCAB else 50256,
        pad_token_id=50257 if vocab >= MULTILINGUAL_VOCAB else 50256,
        bos_token_id=50257 if vocab >= MULTILINGUAL_VOCAB else 50256,
        decoder_start_token_id=50258 if vocab >= MULTILINGUAL_VOCAB else 50257,
        tie_word_embeddings=True)


def write_tokenizer(folder: Path, n_vocab: int) -> None:
    """Writes a WhisperTokenizer for a model of `n_vocab` tokens, from openai-whisper's bundled
    tiktoken vocabulary; special-token ids come out exactly as openai-whisper numbers them."""
    import whisper.tokenizer
    from tokenizers import AddedToken
    from transformers import WhisperTokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    name = "multilingual" if n_vocab >= MULTILINGUAL_VOCAB else "gpt2"
    assets = Path(whisper.tokenizer.__file__).parent / "assets" / f"{name}.tiktoken"
    vocab, merges = TikTokenConverter().extract_vocab_merges_from_model(str(assets))
    encoding = whisper.tokenizer.get_encoding(name, num_languages=num_languages(n_vocab))
    specials = sorted(encoding._special_tokens.items(), key=lambda item: item[1])
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges)
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False)
                          for token, _ in specials], special_tokens=True)
    tokenizer.save_pretrained(folder)


def convert_openai_checkpoint(checkpoint: str | Path, folder: str | Path) -> Path:
    """Writes a Hugging Face Whisper folder (config, safetensors weights, feature extractor,
    tokenizer) holding the same weights as an openai-whisper `.pt` checkpoint."""
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    dims = dict(saved["dims"])
    model = WhisperForConditionalGeneration(hf_config(dims))
    missing, unexpected = model.load_state_dict(hf_state_dict(saved["model_state_dict"]),
                                                strict=False)
    if unexpected or set(missing) - {"proj_out.weight"}:
        raise ValueError(f"checkpoint does not map onto Whisper: missing {missing}, "
                         f"unexpected {unexpected}")
    model.tie_weights()
    model.save_pretrained(out)
    WhisperFeatureExtractor(feature_size=dims["n_mels"]).save_pretrained(out)
    write_tokenizer(out, dims["n_vocab"])
    return out
