"""SQLAlchemy 2 models: the persistent shape of the product.

Sized for 100,000 deals, 1,000,000 stage changes, 10,000 assets and 1,000,000
shares and views: every foreign key used in a report join is indexed, and the
stage history is keyed for ordered reads per deal.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from enablement.db.types import UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with stable constraint names for migrations."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict: JSON, list: JSON}


class Pipeline(Base):
    """A CRM deal pipeline (HubSpot's or one imported from a file)."""

    __tablename__ = "pipelines"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(255))
    display_order: Mapped[int] = mapped_column(Integer, default=0)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    stages: Mapped[list[CrmStage]] = relationship(
        back_populates="pipeline", order_by="CrmStage.display_order", cascade="all, delete-orphan"
    )


class CrmStage(Base):
    """A stage of a pipeline, with its mapping to a buying stage."""

    __tablename__ = "crm_stages"

    pipeline_id: Mapped[str] = mapped_column(ForeignKey("pipelines.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(255))
    display_order: Mapped[int] = mapped_column(Integer, default=0)
    probability: Mapped[float | None] = mapped_column(Float)
    is_closed: Mapped[bool] = mapped_column(Boolean, default=False)
    is_won: Mapped[bool] = mapped_column(Boolean, default=False)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    # The stage map: NULL buying_stage with source 'confirmed' means "deliberately none".
    buying_stage: Mapped[str | None] = mapped_column(String(16))
    mapping_source: Mapped[str] = mapped_column(String(16), default="suggested")
    mapping_confidence: Mapped[float | None] = mapped_column(Float)
    mapped_by: Mapped[str | None] = mapped_column(String(255))
    mapped_at: Mapped[datetime | None] = mapped_column()

    pipeline: Mapped[Pipeline] = relationship(back_populates="stages")


class Owner(Base):
    """A CRM user who owns deals (a salesperson)."""

    __tablename__ = "owners"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def display_name(self) -> str:
        """First and last name, or the e-mail, or the id."""
        name = " ".join(p for p in (self.first_name, self.last_name) if p)
        return name or self.email or self.id


class Deal(Base):
    """A CRM deal with the attributes the product uses."""

    __tablename__ = "deals"
    __table_args__ = (
        Index("ix_deals_pipeline_stage", "pipeline_id", "current_stage_id"),
        Index("ix_deals_owner", "owner_id"),
        Index("ix_deals_deleted", "deleted_at"),
        Index("ix_deals_source_modified", "source_modified_at"),
        # Cache fingerprints read the newest write (enablement.db.versioning).
        Index("ix_deals_updated", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(500), default="")
    company: Mapped[str | None] = mapped_column(String(500))
    pipeline_id: Mapped[str] = mapped_column(ForeignKey("pipelines.id"))
    current_stage_id: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[float | None] = mapped_column(Float)
    currency: Mapped[str | None] = mapped_column(String(3))
    industry: Mapped[str | None] = mapped_column(String(255))
    owner_id: Mapped[str | None] = mapped_column(String(64))
    personas: Mapped[list] = mapped_column(default=list)
    topics: Mapped[list] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    # When the CRM last changed it (HubSpot hs_lastmodifieddate); drives incremental sync.
    source_modified_at: Mapped[datetime | None] = mapped_column()
    deleted_at: Mapped[datetime | None] = mapped_column()
    merged_into_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    stage_history: Mapped[list[StageChange]] = relationship(
        back_populates="deal",
        order_by="(StageChange.entered_at, StageChange.id)",
        cascade="all, delete-orphan",
    )
    shares: Mapped[list[Share]] = relationship(back_populates="deal", order_by="Share.shared_at")


class StageChange(Base):
    """One entry of a deal's stage history: the deal entered this stage at this time."""

    __tablename__ = "stage_changes"
    __table_args__ = (
        UniqueConstraint("deal_id", "pipeline_id", "stage_id", "entered_at"),
        Index("ix_stage_changes_deal_time", "deal_id", "entered_at"),
        Index("ix_stage_changes_stage", "pipeline_id", "stage_id"),
        # Ids are never reused, so a cache fingerprint of (count, max id) sees a delete plus an insert.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"))
    pipeline_id: Mapped[str] = mapped_column(String(64))
    stage_id: Mapped[str] = mapped_column(String(64))
    entered_at: Mapped[datetime] = mapped_column()
    source: Mapped[str] = mapped_column(String(16), default="import")

    deal: Mapped[Deal] = relationship(back_populates="stage_history")


class Asset(Base):
    """A thought-leadership piece (article, webinar, framework, ...)."""

    __tablename__ = "assets"
    __table_args__ = (
        Index("ix_assets_status", "status"),
        Index("ix_assets_url", "url"),
        Index("ix_assets_series", "series", "series_order"),
        # Cache fingerprints read the newest write (enablement.db.versioning).
        Index("ix_assets_updated", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    url: Mapped[str] = mapped_column(String(2048))
    kind: Mapped[str] = mapped_column(String(32))
    author: Mapped[str] = mapped_column(String(255))
    summary: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    topics: Mapped[list] = mapped_column(default=list)
    industries: Mapped[list] = mapped_column(default=list)
    personas: Mapped[list] = mapped_column(default=list)
    stages: Mapped[list] = mapped_column(default=list)
    published_at: Mapped[datetime | None] = mapped_column()
    review_by: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="approved")
    series: Mapped[str | None] = mapped_column(String(255))
    series_order: Mapped[int | None] = mapped_column(Integer)
    # Point-of-view check: how much the text is about the seller's own products.
    pitch_score: Mapped[float | None] = mapped_column(Float)
    pitch_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column()

    tags: Mapped[list[AssetTag]] = relationship(
        back_populates="asset", cascade="all, delete-orphan", lazy="selectin"
    )


class AssetTag(Base):
    """An index row per (asset, dimension, value) so filters by stage/persona/industry/topic use an index."""

    __tablename__ = "asset_tags"
    __table_args__ = (Index("ix_asset_tags_lookup", "dimension", "value", "asset_id"),)

    asset_id: Mapped[str] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)

    asset: Mapped[Asset] = relationship(back_populates="tags")


class Share(Base):
    """An asset sent to a deal's buyer, with a trackable link."""

    __tablename__ = "shares"
    __table_args__ = (
        UniqueConstraint("deal_id", "asset_id", "shared_at"),
        Index("ix_shares_asset", "asset_id", "shared_at"),
        Index("ix_shares_deal", "deal_id", "shared_at"),
        Index("ix_shares_writeback", "writeback_state"),
        # "Recommended, then shared" joins shares to the impression they came from.
        Index("ix_shares_impression", "impression_id"),
        # A caller's own shares (GET /api/v1/shares?mine=true), newest first.
        Index("ix_shares_actor", "actor", "shared_at"),
        # Cache fingerprints read the newest share (enablement.db.versioning).
        Index("ix_shares_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id"))
    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id"))
    shared_at: Mapped[datetime] = mapped_column()
    # Who shared it as people read it (an owner id or a token's name; a name from a file).
    shared_by: Mapped[str | None] = mapped_column(String(255))
    # Who shared it as an identity (services.tokens: owner:<id>, token:<id>); None for shares
    # from files and the demo, which belong to no caller.
    actor: Mapped[str | None] = mapped_column(String(255))
    channel: Mapped[str | None] = mapped_column(String(32))
    # sha256 of the link token; the token itself is never stored.
    link_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(16), default="api")
    impression_id: Mapped[str | None] = mapped_column(String(64))
    # Write-back to the CRM (HUBSPOT_WRITEBACK=notes): pending, done, failed.
    writeback_state: Mapped[str | None] = mapped_column(String(16))
    writeback_note_id: Mapped[str | None] = mapped_column(String(64))
    writeback_error: Mapped[str | None] = mapped_column(Text)
    writeback_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    deal: Mapped[Deal] = relationship(back_populates="shares")
    asset: Mapped[Asset] = relationship()
    views: Mapped[list[LinkView]] = relationship(
        back_populates="share", order_by="LinkView.viewed_at"
    )


class LinkView(Base):
    """A buyer opened a trackable link (bots and link previews are not recorded)."""

    __tablename__ = "link_views"
    __table_args__ = (
        Index("ix_link_views_share", "share_id", "viewed_at"),
        # Ids are never reused, so a cache fingerprint of (count, max id) sees a delete plus an insert.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    share_id: Mapped[int] = mapped_column(ForeignKey("shares.id"))
    viewed_at: Mapped[datetime] = mapped_column()
    user_agent: Mapped[str | None] = mapped_column(String(512))

    share: Mapped[Share] = relationship(back_populates="views")


class ApiToken(Base):
    """An API credential; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[str | None] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class WebSession(Base):
    """A signed-in browser: the cookie names it, so signing out ends it on the server too.

    Only the SHA-256 of the random session id is stored (like tokens): a copy of this table
    does not let anyone forge a cookie, and a cookie copied before sign-out stops working.
    """

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[int] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SyncState(Base):
    """Named cursors and counters for CRM syncs (advanced only after data commit)."""

    __tablename__ = "sync_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookEvent(Base):
    """A CRM webhook event stored durably before it is applied (the webhook inbox).

    status: `pending` (stored, not applied yet), `applied`, `ignored` (nothing to change: a
    property the product does not track, or older than what is known), `rejected` (could
    not be read; `error` says why). One row per event key, however often it is delivered.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("portal_id", "subscription_id", "event_id", "occurred_at"),
        Index("ix_webhook_events_pending", "applied_at"),
        Index("ix_webhook_events_status", "status"),
        # The newest applied change of a deal's field (late events must not overwrite it).
        Index("ix_webhook_events_field", "object_id", "property_name", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    portal_id: Mapped[str] = mapped_column(String(32))
    subscription_id: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column()
    subscription_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    # The deal field this event orders against (enablement.domain.deal_events.ordering_field).
    property_name: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # Deliveries of this same event after the first (HubSpot retries, concurrent workers).
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[dict] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)


class ReportCache(Base):
    """A computed report kept per (kind, parameters) with the fingerprint of the tables it read."""

    __tablename__ = "report_cache"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    # enablement.db.versioning.version_text of the tables the report reads.
    version: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecommendationImpression(Base):
    """One recommendation answer shown for a deal (or withheld for the holdout), and who asked."""

    __tablename__ = "recommendation_impressions"
    __table_args__ = (
        Index("ix_recommendation_impressions_deal", "deal_id", "created_at"),
        Index("ix_recommendation_impressions_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id"))
    buying_stage: Mapped[str | None] = mapped_column(String(16))
    holdout: Mapped[bool] = mapped_column(Boolean, default=False)
    # Where it was shown: api, cli, hubspot_card.
    source: Mapped[str] = mapped_column(String(16), default="api")
    # Who asked, as an actor (services.tokens: owner:<id>, token:<id>, cli:<user>).
    requested_by: Mapped[str | None] = mapped_column(String(255))
    token_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    items: Mapped[list[RecommendationItem]] = relationship(
        back_populates="impression", order_by="RecommendationItem.rank"
    )


class RecommendationItem(Base):
    """An asset listed in an impression, at its rank with its score."""

    __tablename__ = "recommendation_items"
    __table_args__ = (Index("ix_recommendation_items_asset", "asset_id"),)

    impression_id: Mapped[str] = mapped_column(
        ForeignKey("recommendation_impressions.id", ondelete="CASCADE"), primary_key=True
    )
    asset_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    exploration: Mapped[bool] = mapped_column(Boolean, default=False)

    impression: Mapped[RecommendationImpression] = relationship(back_populates="items")


class IdempotencyKey(Base):
    """A write's first answer, kept per (token, Idempotency-Key) so a repeat replays it (24 h)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created", "created_at"),)

    # NOTE: the primary key is what makes two concurrent repeats race-safe: the second insert
    # waits for the first transaction and then fails, and replays the committed answer.
    token_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # SHA-256 of the route and the request body: the same key with another body is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """A piece of background work: what, its key, where it stands, and what went wrong last.

    One row per key: asking for work whose key is queued or running adds nothing (a report is
    computed once however many ask); asking again after it ended queues the same row again.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_run_after", "state", "run_after"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # What the work is and its parameters, e.g. "report:effectiveness:latest": one job per key.
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    # queued, running, succeeded or failed (enablement.db.jobs.STATES).
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    # Not to start before (a retry's backoff, or a delayed job).
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Which worker runs it; renewed while it runs, taken over when silent longer than the lease.
    owner: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class Nudge(Base):
    """The pieces prepared for a deal when it entered a buying stage, and their delivery to its owner.

    One row per (deal, stage entry), whatever the path that saw the entry (webhook, sync, file)
    and however often: the unique key is what makes preparing and delivering idempotent.
    state: `skipped` (no nudge; `reason` says why), `pending` (prepared, to deliver),
    `delivering` (claimed by a worker until `next_attempt_at`), `delivered`, `failed` (retried
    at `next_attempt_at`), `dead` (attempts used up; listed for an admin).
    """

    __tablename__ = "nudges"
    __table_args__ = (
        UniqueConstraint("deal_id", "pipeline_id", "stage_id", "entered_at"),
        Index("ix_nudges_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"))
    pipeline_id: Mapped[str] = mapped_column(String(64))
    stage_id: Mapped[str] = mapped_column(String(64))
    entered_at: Mapped[datetime] = mapped_column()
    buying_stage: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    impression_id: Mapped[str | None] = mapped_column(String(32))
    # What was prepared: [{"asset_id", "title", "reason"}] in rank order (links are derived).
    items: Mapped[list] = mapped_column(default=list)
    # How it was delivered: "task" or "note" (the CRM object's id), and the outgoing webhook.
    channel: Mapped[str | None] = mapped_column(String(16))
    crm_object_id: Mapped[str | None] = mapped_column(String(64))
    webhook_sent_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()
