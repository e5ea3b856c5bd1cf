"""Registered media and task outcomes that take precedence over probing and derivation."""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import AudioMeta, TaskStatus, VideoMeta


@dataclass(frozen=True, slots=True)
class OutcomeRule:
    """Matches tasks by external_task_id and/or parent video URL; unset fields match anything."""

    status: TaskStatus = TaskStatus.SUCCEED
    message: str = ""
    external_task_id: str | None = None
    video_url: str | None = None
    submitted_ms: int | None = None
    processing_ms: int | None = None

    def matches(self, external_task_id: str, video_url: str) -> bool:
        return (self.external_task_id is None or self.external_task_id == external_task_id) and (
            self.video_url is None or self.video_url == video_url
        )


@dataclass(slots=True)
class FixtureSet:
    videos_by_url: dict[str, VideoMeta] = field(default_factory=dict)
    videos_by_id: dict[str, VideoMeta] = field(default_factory=dict)
    audios_by_url: dict[str, AudioMeta] = field(default_factory=dict)
    audios_by_id: dict[str, AudioMeta] = field(default_factory=dict)
    outcomes: list[OutcomeRule] = field(default_factory=list)

    def outcome_for(self, external_task_id: str, video_url: str) -> OutcomeRule | None:
        # The last registered rule wins, so a test can override a file's defaults.
        for rule in reversed(self.outcomes):
            if rule.matches(external_task_id, video_url):
                return rule
        return None

    def clear(self) -> None:
        self.videos_by_url.clear()
        self.videos_by_id.clear()
        self.audios_by_url.clear()
        self.audios_by_id.clear()
        self.outcomes.clear()

    def summary(self) -> dict[str, int]:
        return {
            "videos": len(self.videos_by_url) + len(self.videos_by_id),
            "audios": len(self.audios_by_url) + len(self.audios_by_id),
            "outcomes": len(self.outcomes),
        }
