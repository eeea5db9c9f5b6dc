"""The server entry and the page script of the dashboard, in one file (Streamlit 1.67's st.App).

``streamlit run app.py`` imports this module without a script-run context: it then defines
``app = st.App(...)`` whose lifespan runs the start-up sequence once per server process and
whose routes serve the LiteMaaS-compatible HTTP API. Each browser session then runs this same
file as its page script (a context exists): it resolves the runtime and the role, shows the
banners and runs the navigation over the file pages in ``pages/``.
"""

from __future__ import annotations

import logging

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

log = logging.getLogger("litemaas_sync.app")

PAGES = (
    ("pages/catalogue.py", "Catalogue", ":material/list_alt:"),
    ("pages/diff.py", "Diff", ":material/difference:"),
    ("pages/sync.py", "Sync", ":material/sync:"),
    ("pages/audit_log.py", "Audit log", ":material/history:"),
    ("pages/restore.py", "Restore", ":material/restore:"),
    ("pages/health.py", "Health", ":material/monitor_heart:"),
)


def _server_parts() -> tuple[list, object]:  # type: ignore[type-arg]
    """The routes and the lifespan of the ASGI app (Starlette is imported only by the server)."""
    from contextlib import asynccontextmanager

    import sqlalchemy as sa
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from sync_core import api, api_admin
    from sync_core.config import ConfigError, Settings
    from sync_core.logs import configure_logging
    from sync_core.startup import describe_failure

    def respond(answer: api.ApiResponse) -> Response:
        return Response(
            api.dumps(answer.body), status_code=answer.status, media_type="application/json"
        )

    async def sync_route(request: Request) -> Response:
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > api.MAX_BODY_BYTES:
            return respond(api.ApiResponse(413, {"error": "body_too_large",
                                                 "message": "The body is limited to 64 KiB."}))
        body = b""
        async for chunk in request.stream():  # never read past the limit
            body += chunk
            if len(body) > api.MAX_BODY_BYTES:
                return respond(api.ApiResponse(413, {"error": "body_too_large",
                                                     "message": "The body is limited to 64 KiB."}))
        runtime = (await run_in_threadpool(api.get_app_runtime)).runtime
        answer = await run_in_threadpool(
            api.handle_sync,
            runtime,
            authorization=request.headers.get("authorization"),
            body=body,
            ip_address=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
        )
        return respond(answer)

    async def health_route(_request: Request) -> Response:
        runtime = (await run_in_threadpool(api.get_app_runtime)).runtime
        return respond(await run_in_threadpool(api.handle_health, runtime))

    async def stats_route(_request: Request) -> Response:
        runtime = (await run_in_threadpool(api.get_app_runtime)).runtime
        return respond(await run_in_threadpool(api.handle_stats, runtime))

    async def metrics_route(_request: Request) -> Response:
        runtime = (await run_in_threadpool(api.get_app_runtime)).runtime
        status, body, media_type = await run_in_threadpool(api.handle_metrics, runtime)
        return Response(body, status_code=status, media_type=media_type)

    def admin_route(handler, **fixed):  # type: ignore[no-untyped-def]
        """An authenticated admin route: body and path/query parameters to the handler."""

        async def route(request: Request) -> Response:
            declared = request.headers.get("content-length", "0")
            if not declared.isdigit() or int(declared) > api.MAX_BODY_BYTES:
                return respond(api.ApiResponse(413, {"error": "body_too_large"}))
            body = await request.body() if request.method != "GET" else b""
            params = {k: v.lower() == "true" for k, v in request.query_params.items()
                      if k in ("forceUpdate", "markUnavailable")}
            params.update(request.path_params)
            runtime = (await run_in_threadpool(api.get_app_runtime)).runtime
            answer = await run_in_threadpool(
                lambda: handler(runtime, authorization=request.headers.get("authorization"),
                                body=body, ip_address=request.client.host if request.client
                                else None, **params, **fixed))
            return respond(answer)

        return route

    async def live_route(_request: Request) -> Response:
        return respond(api.handle_live())

    async def ready_route(_request: Request) -> Response:
        runtime = (await run_in_threadpool(api.get_app_runtime)).runtime
        return respond(await run_in_threadpool(api.handle_ready, runtime))

    @asynccontextmanager
    async def lifespan(_app: st.App):  # type: ignore[no-untyped-def]
        settings = None
        try:  # validate before serving: a broken configuration or database stops start-up
            settings = Settings.from_env()
            configure_logging(settings.log_level, settings.log_format, settings.secret_values())
            entry = await run_in_threadpool(api.get_app_runtime, settings)
        except (ConfigError, sa.exc.SQLAlchemyError) as exc:
            log.critical(describe_failure(exc, settings))
            raise SystemExit(1) from None
        api.start_scheduler(entry)
        log.info(
            "start-up done: schema %s, sync %s",
            entry.startup and entry.startup.revision,
            "ok" if entry.startup and not entry.startup.sync_error else "not ok",
        )
        yield
        api.reset_runtimes()

    routes = [
        Route("/api/v1/models/sync", sync_route, methods=["POST"]),
        Route("/api/v1/models/health", health_route, methods=["GET"]),
        Route("/api/v1/models/sync/stats", stats_route, methods=["GET"]),
        Route("/metrics", metrics_route, methods=["GET"]),
        Route("/api/v1/health/live", live_route, methods=["GET"]),
        Route("/api/v1/health/ready", ready_route, methods=["GET"]),
        Route("/api/v1/models/sync/plan", admin_route(api_admin.handle_plan), methods=["GET"]),
        Route("/api/v1/models/sync/approve", admin_route(api_admin.handle_approve),
              methods=["POST"]),
        Route("/api/v1/models/sync/restore", admin_route(api_admin.handle_restore),
              methods=["POST"]),
        Route("/api/v1/models/policies", admin_route(api_admin.handle_policies),
              methods=["GET"]),
        Route("/api/v1/models/{model_id:path}/policy", admin_route(api_admin.handle_set_policy),
              methods=["PUT"]),
        Route("/api/v1/scheduler/pause", admin_route(api_admin.handle_pause), methods=["POST"]),
    ]
    return routes, lifespan


def _run_pages() -> None:
    from pages import ui

    st.set_page_config(page_title="LiteMaaS Model Sync", page_icon=":material/sync:", layout="wide")
    runtime = ui.app_runtime()
    ident = ui.identity(runtime)
    st.session_state["_identity"] = ident
    ui.banners(runtime, ident)
    navigation = st.navigation(
        [st.Page(path, title=title, icon=icon) for path, title, icon in PAGES]
    )
    with st.sidebar:
        st.caption(f"Role: **{ident.actor.role}** ({ident.actor.name})")
        st.caption(f"Database: `{runtime.settings.display_database_url()}`")
        st.caption(f"LiteLLM: `{runtime.runtime.source.model_info_url}`")
    navigation.run()


if get_script_run_ctx(suppress_warning=True) is None:
    # Written as a direct ``st.App(...)`` call: ``streamlit run`` finds the app by reading this.
    _routes, _lifespan = _server_parts()
    app = st.App(__file__, routes=_routes, lifespan=_lifespan)  # type: ignore[arg-type]
else:
    _run_pages()
