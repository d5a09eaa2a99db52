"""Exports of a corpus into other trainers' layouts (`ualm export ualm`: UALM's own trainer)."""
