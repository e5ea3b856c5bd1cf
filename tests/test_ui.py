"""Pages for people: the landing page, the Swagger UI docs, the dashboard and its state."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.conftest import create_body, identify

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["/", "/docs", "/__admin/docs", "/__admin/ui"]
ASSET = re.compile(r'(?:src|href)="([^"#]+)"')


class TestPages:
    @pytest.mark.parametrize("path", PAGES)
    def test_page_and_every_asset_it_loads_come_from_the_mock(
        self, client: TestClient, path: str
    ) -> None:
        """Each page is HTML whose scripts, styles and links are all served by the mock itself."""
        page = client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assets = ASSET.findall(page.text)
        assert assets
        for url in assets:
            assert url.startswith("/"), f"{path} loads {url} from elsewhere"
            assert client.get(url).status_code == 200, url
        print(f"{path}: {len(assets)} local assets, none from another host")

    def test_home_links_docs_and_dashboard(self, client: TestClient) -> None:
        """The landing page links the API docs, the control API docs and the dashboard."""
        links = set(ASSET.findall(client.get("/").text))
        assert {"/docs", "/__admin/docs", "/__admin/ui", "/openapi.json"} <= links

    @pytest.mark.parametrize(
        ("path", "spec"), [("/docs", "/openapi.json"), ("/__admin/docs", "/__admin/openapi.json")]
    )
    def test_docs_render_the_served_spec_with_swagger_ui(
        self, client: TestClient, path: str, spec: str
    ) -> None:
        """Swagger UI (a 3.1-capable 5.x bundle) is pointed at the spec the mock serves."""
        page = client.get(path).text
        assert f'fetch("{spec}")' in page and "window.location.origin" in page
        bundle = client.get("/__static/swagger-ui/swagger-ui-bundle.js")
        assert bundle.status_code == 200 and len(bundle.content) > 500_000
        assert client.get(spec).json()["openapi"].startswith("3.")

    @pytest.mark.parametrize("path", ["/__admin", "/__admin/"])
    def test_admin_root_leads_to_the_dashboard(self, client: TestClient, path: str) -> None:
        """/__admin/ redirects to the dashboard instead of answering 404."""
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 307 and r.headers["location"] == "/__admin/ui"

    def test_missing_asset_is_the_envelope(self, client: TestClient) -> None:
        """An unknown static file is the 1202 envelope, never a bare 404 page."""
        for url in ("/__static/swagger-ui/nope.js", "/__admin/ui/static/../ui.py"):
            r = client.get(url)
            assert r.status_code == 404 and r.json()["code"] == 1202, url


class TestDashboardState:
    def test_task_timeline_planned_then_reached(self, client: TestClient) -> None:
        """A task shows its three phases at their planned times; advancing marks them reached."""
        session = identify(client)["session_id"]
        created = client.post(
            "/v1/videos/advanced-lip-sync", json=create_body(session, external_task_id="ui-1")
        ).json()["data"]
        state = client.get("/__admin/ui/state").json()
        (task,) = state["tasks"]
        assert task["task_id"] == created["task_id"] and task["account"] == "mock-access-key"
        t0 = created["created_at"]
        assert [
            (p["status"], p["planned_ms"], p["reached"], p["at_ms"]) for p in task["timeline"]
        ] == [
            ("submitted", t0, True, t0),
            ("processing", t0 + 1000, False, None),
            ("succeed", t0 + 4000, False, None),
        ]
        assert state["clock"]["next_due_ms"] == t0 + 1000
        client.post("/__admin/clock/advance", json={"ms": 4000})
        (task,) = client.get("/__admin/ui/state").json()["tasks"]
        assert task["task_status"] == "succeed"
        assert [p["at_ms"] for p in task["timeline"]] == [t0, t0 + 1000, t0 + 4000]
        assert task["updated_at"] == t0 + 4000

    def test_refusals_faults_and_chaos_are_shown(self, client: TestClient) -> None:
        """The state carries journal refusals with their rule, faults with hits, chaos scopes."""
        session = identify(client)["session_id"]
        body = create_body(session)
        body["face_choose"][0]["sound_volume"] = 2.5
        assert client.post("/v1/videos/advanced-lip-sync", json=body).json()["code"] == 1201
        client.post("/__admin/faults", json={"kind": "latency", "latency_ms": 1})
        client.post("/__admin/callbacks/chaos", json={"task": "t-9", "drop": True})
        state = client.get("/__admin/ui/state").json()
        refusals = [e for e in state["journal"] if e["code"] == 1201]
        assert refusals and refusals[0]["rule"] == "volume-range"
        assert [f["kind"] for f in state["faults"]] == ["latency"]
        assert state["chaos"]["scopes"]["t-9"]["drop"] is True

    def test_poll_stays_small_with_many_tasks(self, client: TestClient) -> None:
        """With 400 tasks stored, one poll sends the newest 200 and answers within 300 ms."""
        session = identify(client)["session_id"]
        for i in range(400):
            r = client.post(
                "/v1/videos/advanced-lip-sync", json=create_body(session, external_task_id=f"n{i}")
            )
            assert r.json()["code"] == 0
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            answer = client.get("/__admin/ui/state")
            timings.append((time.perf_counter() - started) * 1000)
        state = answer.json()
        assert state["task_count"] == 400 and len(state["tasks"]) == 200
        assert state["tasks"][0]["task_info"]["external_task_id"] == "n399"  # newest first
        median = sorted(timings)[2]
        print(f"state poll at 400 tasks: median {median:.1f} ms, {len(answer.content)} bytes")
        assert median < 300
        assert len(answer.content) < 400_000

    def test_journal_is_bounded(self, client: TestClient) -> None:
        """Only the newest 100 journal entries are sent, whatever the journal holds."""
        for _ in range(130):
            client.get("/v1/videos/advanced-lip-sync/none")
        journal = client.get("/__admin/ui/state").json()["journal"]
        assert len(journal) == 100 and journal[-1]["seq"] == 130


@pytest.mark.slow
def test_wheel_ships_py_typed_and_the_pages(tmp_path: Path) -> None:
    """The wheel carries py.typed and the dashboard's files."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("kling_lipsync_mock-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "mock_server/py.typed",
        "contracts/py.typed",
        "mock_server/web/static/dashboard.html",
        "mock_server/web/static/dashboard.js",
        "mock_server/web/ui.py",
    ):
        assert name in names, name
    print(f"wheel {wheel.name}: {wheel.stat().st_size} bytes, {len(names)} files")
