"""The catalogue and the diff → sync path on a real PostgreSQL (advisory lock, JSONB, TEXT[]).

Mock catalogue, PostgreSQL database: not demo mode, so start-up runs a real initial sync.
"""

from __future__ import annotations

import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from sync_core import audit
from sync_core.db import create_db_engine
from tests.test_app_support import APP, app_env  # noqa: F401


def test_catalogue_and_sync_on_postgres(app_env, pg_url: str) -> None:  # noqa: F811
    app_env(DATABASE_URL=pg_url)
    engine = create_db_engine(pg_url)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception and at.title[0].value == "Catalogue"
    with engine.connect() as conn:
        total = conn.execute(sa.text("SELECT count(*) FROM models")).scalar()
    assert total > 10 and len(at.dataframe[0].value) == total
    assert "Demo mode" not in " ".join(i.value for i in at.info)
    assert "Mock mode" in " ".join(i.value for i in at.info)

    at.multiselect(key="cat_provider").set_value(["anthropic"]).run()
    assert set(at.dataframe[0].value["provider"]) == {"anthropic"}

    # Someone edits a price by hand: the diff shows it and a sync puts LiteLLM's value back.
    with engine.begin() as conn:
        model_id, price = conn.execute(
            sa.text(
                "SELECT id, input_cost_per_token FROM models WHERE input_cost_per_token > 0 "
                "ORDER BY id LIMIT 1"
            )
        ).one()
        conn.execute(
            sa.text("UPDATE models SET input_cost_per_token = 0.5 WHERE id = :id"), {"id": model_id}
        )
    at.switch_page("pages/diff.py").run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Changed"] == "1"
    at.button[-1].click().run()
    at.switch_page("pages/sync.py").run()
    at.button(key="sync_run").click().run()
    assert not at.exception
    assert "Synced at" in " ".join(s.value for s in at.success)
    with engine.connect() as conn:
        restored = conn.execute(
            sa.text("SELECT input_cost_per_token FROM models WHERE id = :id"), {"id": model_id}
        ).scalar()
    assert restored == price
    last = audit.last_sync(engine)
    assert last["success"] and last["metadata"]["trigger"] == "manual"
    assert last["metadata"]["counts"]["updated"] == 1
    engine.dispose()
