"""Properties over any catalogue and any database state, on a real database (both kinds).

- planning again right after a sync gives no changes;
- with markUnavailable, the available set is the catalogue's valid names (plus names LiteLLM
  still serves but whose entry could not be mapped, which stay as they were);
- without it, no row becomes unavailable.
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync_core.access import SYSTEM
from sync_core.mapping import map_catalogue
from sync_core.plan import SyncOptions
from sync_core.store import insert_rows, read_current_rows
from sync_core.sync import SyncService
from tests.factories import StaticSource, entry

NAMES = [f"m{i}" for i in range(8)] + ["openai/*"]
costs = st.sampled_from([None, 0, 1e-06, 2.5e-06, "0.00001", 1e-12, -1, 1e9])
flags = st.sampled_from([None, True, False])

entries_strategy = st.lists(
    st.builds(
        lambda name, dep, cin, cout, ctx, vision, fc, desc: entry(
            name,
            deployment_id=dep,
            input_cost_per_token=cin,
            output_cost_per_token=cout,
            max_input_tokens=ctx,
            supports_vision=vision,
            supports_function_calling=fc,
            description=desc,
        ),
        st.sampled_from(NAMES),
        st.sampled_from(["a", "b", "c"]),
        costs,
        costs,
        st.sampled_from([None, 4096, 128000]),
        flags,
        flags,
        st.sampled_from([None, "upstream"]),
    ),
    max_size=12,
)
db_state_strategy = st.tuples(
    entries_strategy,
    st.dictionaries(st.sampled_from(NAMES[:-1]), st.sampled_from(["available", "unavailable"])),
    st.dictionaries(st.sampled_from(NAMES[:-1]), st.sampled_from([None, "admin text"])),
)


def _seed(engine, state) -> None:
    seed_entries, availability, descriptions = state
    rows = [
        dataclasses.replace(
            row,
            availability=availability.get(row.id, "available"),
            description=descriptions.get(row.id, row.description),
        )
        for row in map_catalogue(seed_entries).rows.values()
    ]
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM models"))
        insert_rows(conn, rows)


def _available(engine) -> set[str]:
    with engine.connect() as conn:
        return {k for k, r in read_current_rows(conn).items() if r.availability == "available"}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    catalogue=entries_strategy,
    state=db_state_strategy,
    force=st.booleans(),
    mark=st.booleans(),
    mode=st.sampled_from(["litellm_wins", "database_wins", "merge"]),
)
def test_sync_then_plan_is_empty_and_availability_follows_the_catalogue(
    engine, catalogue, state, force, mark, mode
):
    _seed(engine, state)
    before_available = _available(engine)
    service = SyncService(engine, StaticSource(catalogue))
    options = SyncOptions(
        force_update=force,
        mark_unavailable=mark,
        allow_empty_catalogue=True,
        conflict_resolution=mode,
    )
    result = service.run(options, trigger="manual", actor=SYSTEM)
    assert result.success, result.error_message

    replan = service.preview(SyncOptions(mark_unavailable=mark, conflict_resolution=mode))
    assert not replan.has_changes, replan.summary

    mapped = map_catalogue(catalogue)
    available = _available(engine)
    if mark:
        assert available == set(mapped.rows) | (before_available & mapped.rejected_ids)
    else:
        assert before_available <= available
        assert set(mapped.rows) <= available
