"""Concurrent read-then-write requests never fail with 'database is locked' (SQLite) or lose writes."""

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from enablement.db.models import LinkView
from enablement.services.shares import create_share
from tests.crm_data import insert_asset, insert_deals, insert_pipeline, sample_deal

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"


def test_many_buyers_opening_links_at_once_are_all_redirected_and_counted(app, container, sessions):
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal())
    insert_asset(sessions)
    share, _ = create_share(
        sessions, container.settings, "d1", "a1", shared_by="rep", actor="owner:rep"
    )
    path = share["link"].removeprefix(container.settings.public_base_url)

    def open_link(_):
        return app.test_client().get(path, headers={"User-Agent": BROWSER}).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(open_link, range(80)))
    assert codes == [302] * 80
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(LinkView)) == 80
