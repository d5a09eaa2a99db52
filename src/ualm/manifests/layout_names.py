"""The full names of a corpus's files, as `CorpusLayout` gives them: `names` joined onto the
root. Pure naming, no I/O."""

from __future__ import annotations

from ualm.manifests import names


class LayoutNames:
    def path(self, name: str) -> str:
        raise NotImplementedError

    @property
    def corpus_file(self) -> str:
        return self.path(names.CORPUS_FILE)

    @property
    def card(self) -> str:
        return self.path(names.CARD)

    @property
    def work(self) -> str:
        return self.path(names.WORK)

    @property
    def plan_file(self) -> str:
        return self.path(names.PLAN)

    @property
    def runs_log(self) -> str:
        return self.path(names.RUNS_LOG)

    @property
    def faults(self) -> str:
        return self.path(names.FAULTS)

    @property
    def publish_hashes(self) -> str:
        return self.path(names.PUBLISH_HASHES)

    def done_record(self, stage: str, index: int) -> str:
        return self.path(names.done_record(stage, index))

    def unit_records(self, unit: int) -> str:
        return self.path(names.unit_records(unit))

    def id_renames_bucket(self, bucket: int) -> str:
        return self.path(names.id_renames_bucket(bucket))

    def unit_renames(self, unit: int) -> str:
        return self.path(names.unit_renames(unit))

    def unit_inputs(self, unit: int) -> str:
        return self.path(names.unit_file(unit, "inputs"))

    def unit_segments(self, unit: int) -> str:
        return self.path(names.unit_file(unit, "segments"))

    def unit_payload(self, unit: int) -> str:
        return self.path(names.unit_file(unit, "payload"))

    def dedup_bucket(self, bucket: int) -> str:
        return self.path(names.dedup_bucket(bucket))

    def near_edges(self, bucket: int) -> str:
        return self.path(names.near_edges(bucket))

    def caption_edges(self, bucket: int) -> str:
        return self.path(names.caption_edges(bucket))

    @property
    def near_dedup_decisions(self) -> str:
        return self.path(names.NEAR_DECISIONS)

    @property
    def caption_dedup_decisions(self) -> str:
        return self.path(names.CAPTION_DECISIONS)

    @property
    def caption_groups(self) -> str:
        return self.path(names.CAPTION_GROUPS)

    @property
    def near_duplicates(self) -> str:
        return self.path(names.NEAR_DUPLICATES)

    @property
    def caption_duplicates(self) -> str:
        return self.path(names.CAPTION_DUPLICATES)

    @property
    def decontam_folder(self) -> str:
        return self.path(names.DECONTAM)

    @property
    def eval_audio(self) -> str:
        return self.path(names.EVAL_AUDIO)

    @property
    def eval_captions(self) -> str:
        return self.path(names.EVAL_CAPTIONS)

    @property
    def eval_sets(self) -> str:
        return self.path(names.EVAL_SETS)

    def decontam_decisions(self, unit: int) -> str:
        return self.path(names.decontam_decisions(unit))

    def decontam_rejects(self, unit: int) -> str:
        return self.path(names.decontam_rejects(unit))

    def rejects_part(self, unit: int) -> str:
        return self.path(names.rejects_part(unit))

    def duplicates_part(self, bucket: int) -> str:
        return self.path(names.duplicates_part(bucket))

    def samples_part(self, modality: str, shard: int) -> str:
        return self.path(names.samples_part(modality, shard))

    def manifest_folder(self, kind: str) -> str:
        """`samples`, `rejects`, `duplicates`, `traces`, `pairs`, `tokens/<codec id>`."""
        return self.path(names.manifest_folder(kind))

    def tokens_manifests(self, codec_id: str) -> str:
        return self.path(names.tokens_manifests(codec_id))

    def part(self, kind: str, index: int) -> str:
        return self.path(names.part(kind, index))

    def audio_shard(self, shard: int) -> str:
        return self.path(names.audio_shard(shard))

    def text_shard(self, shard: int) -> str:
        return self.path(names.text_shard(shard))

    def shard(self, modality: str, shard: int) -> str:
        """A shard of `audio`, `text` or a synthesized subset (`traces`, `pairs`)."""
        return self.path(names.shard(modality, shard))

    def shard_folder(self, modality: str) -> str:
        return self.path(modality)

    def token_folder(self, codec_id: str) -> str:
        return self.path(names.token_folder(codec_id))

    def token_shard(self, codec_id: str, shard: int) -> str:
        return self.path(names.token_shard(codec_id, shard))

    def tokens_part(self, codec_id: str, shard: int) -> str:
        return self.path(names.tokens_part(codec_id, shard))

    def synth(self, name: str) -> str:
        """A synthesis output by its `names` constant (names.SYNTH_FUNNEL, ...)."""
        return self.path(name)

    def shard_files(self, modality: str) -> list[str]:
        """The shards of `audio`, `text`, `traces` or `pairs` present, in name order."""
        return self.list(self.shard_folder(modality), names.shard_prefix(modality), ".tar")

    def shards(self, modality: str) -> list[int]:
        """Numbers of the shards of a modality present in the corpus."""
        return [names.shard_index(p) for p in self.shard_files(modality)]

    def token_shards(self, codec_id: str) -> list[str]:
        return self.list(self.token_folder(codec_id), names.shard_prefix("tokens"), ".tar")

    def manifest_parts(self, kind: str) -> list[str]:
        """The parquet parts of a manifest folder (`samples`, `rejects`, ...), in name order."""
        return self.list(self.manifest_folder(kind), suffix=".parquet")

    def samples_parts(self, modality: str) -> list[str]:
        """The samples manifest parts of one modality, in name order."""
        return self.list(self.manifest_folder("samples"), names.shard_prefix(modality),
                         ".parquet")

    def list(self, folder: str, prefix: str = "", suffix: str = "") -> list[str]:
        raise NotImplementedError
