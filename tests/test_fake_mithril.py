"""The fake Mithril API itself, spoken to over HTTP with httpx: shapes, validation, lifecycle and injected faults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fake_mithril import FakeMithril

ML_TEAM = "proj_8Kq2nLw0ZbT4xYcd"
H100 = "h100-80gb.sxm.8x"
REGION = "us-central2-a"


@pytest.fixture
def fake() -> Iterator[FakeMithril]:
    with FakeMithril() as server:
        yield server


@pytest.fixture
def api(fake: FakeMithril) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {fake.key}"}, timeout=5) as client:
        yield client


def bid_body(fake: FakeMithril, **changes: Any) -> dict[str, Any]:
    body = {
        "project": ML_TEAM, "region": REGION, "instance_type": fake.instance_type_fid(H100, REGION),
        "limit_price": "$24.00", "instance_quantity": 2, "name": "llama-ft-3fa9c1",
        "launch_specification": {"ssh_keys": [fake.ssh_key_fid("ml-team", "alice-laptop")],
                                 "volumes": [fake.volume_fid("ml-team", "ckpts")],
                                 "startup_script": "#!/bin/bash\necho hi\n"},
    }
    body.update(changes)
    return body


def create_bid(api: httpx.Client, fake: FakeMithril, **changes: Any) -> dict[str, Any]:
    response = api.post("/v2/spot/bids", json=bid_body(fake, **changes))
    assert response.status_code == 201, response.text
    return response.json()


def locs(response: httpx.Response) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    return [entry["loc"] for entry in response.json()["detail"]]


# Authentication and the seeded catalog.


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer fkey_wrong"}, {"Authorization": "fkey_test"}])
def test_missing_or_wrong_key_is_401(fake: FakeMithril, headers: dict[str, str]) -> None:
    response = httpx.get(f"{fake.url}/v2/projects", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid API key"}


def test_projects_ssh_keys_and_volumes_are_seeded(api: httpx.Client, fake: FakeMithril) -> None:
    projects = api.get("/v2/projects").json()
    assert {p["name"]: p["fid"] for p in projects} == fake.projects
    assert all(set(p) == {"fid", "name", "created_at"} for p in projects)

    assert locs(api.get("/v2/ssh-keys")) == [["query", "project"]]
    keys = api.get("/v2/ssh-keys", params={"project": ML_TEAM}).json()
    assert [(k["name"], k["required"]) for k in keys] == [("alice-laptop", False), ("ci-runner", True)]
    assert keys[0]["fid"] == fake.ssh_key_fid("ml-team", "alice-laptop")
    assert set(keys[0]) == {"fid", "name", "project", "public_key", "created_at", "required"}
    assert keys[0]["public_key"].startswith("ssh-ed25519 ")

    volumes = api.get("/v2/volumes", params={"project": ML_TEAM, "region": REGION}).json()
    assert [(v["fid"], v["name"], v["interface"]) for v in volumes] == [
        (fake.volume_fid("ml-team", "ckpts"), "ckpts", "File")]
    assert api.get("/v2/projects/x").status_code == 404
    assert api.get("/v2/ssh-keys", params={"project": "proj_nope"}).json() == {"detail": "Project not found"}


def test_instance_type_fids_differ_per_region(api: httpx.Client, fake: FakeMithril) -> None:
    types = {t["fid"]: t for t in api.get("/v2/instance-types").json()}
    offers = api.get("/v2/spot/availability").json()
    h100 = {o["region"]: o["instance_type"] for o in offers if types[o["instance_type"]]["name"] == H100}
    assert len(h100) == 3 and len(set(h100.values())) == 3
    assert h100[REGION] == fake.instance_type_fid(H100, REGION)
    assert types[h100[REGION]]["num_gpus"] == 8 and types[h100[REGION]]["gpu_type"] == "H100"
    names = {t["name"] for t in types.values()}
    assert {"a100-80gb.sxm.1x", "a100-80gb.sxm.4x", "a100-80gb.sxm.8x", "h200.8x"} <= names
    assert all(o["fid"].startswith("auc_") and o["last_instance_price"].startswith("$") for o in offers)


def test_pricing_current_is_in_cents(api: httpx.Client, fake: FakeMithril) -> None:
    fid = fake.instance_type_fid(H100, REGION)
    price = api.get("/v2/pricing/current", params={"instance_type": fid, "region": REGION}).json()
    assert price["spot_price_cents"] == 1120 and price["minimum_price_cents"] == 800
    assert price["available_capacity"] == 6
    elsewhere = api.get("/v2/pricing/current", params={"instance_type": fid, "region": "us-central1-b"})
    assert locs(elsewhere) == [["query", "instance_type"]]


# Bids: create, read, list, change, cancel.


def test_create_get_and_list_across_pages(api: httpx.Client, fake: FakeMithril) -> None:
    created = [create_bid(api, fake, name=f"job-{n}") for n in range(3)]
    first = created[0]
    assert first["fid"].startswith("bid_") and first["status"] == "Open" and first["instances"] == []
    assert first["limit_price"] == "$24.00" and first["created_at"].endswith("Z") and first["deactivated_at"] is None
    assert first["created_by"].startswith("user_")
    assert first["launch_specification"]["startup_script"] == "#!/bin/bash\necho hi\n"
    assert api.get(f"/v2/spot/bids/{first['fid']}").json() == first

    seen, cursor, pages = [], None, 0
    while True:
        params = {"project": ML_TEAM, "limit": 100, **({"next_cursor": cursor} if cursor else {})}
        page = api.get("/v2/spot/bids", params=params).json()
        assert len(page["data"]) <= fake.page_size
        seen += [bid["fid"] for bid in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert (seen, pages) == ([bid["fid"] for bid in created], 2)

    one = api.get("/v2/spot/bids", params={"project": ML_TEAM, "limit": 1, "sort_dir": "desc"}).json()
    assert [b["fid"] for b in one["data"]] == [created[2]["fid"]] and one["next_cursor"]
    named = api.get("/v2/spot/bids", params={"project": ML_TEAM, "name": "job-1"}).json()
    assert [b["fid"] for b in named["data"]] == [created[1]["fid"]] and named["next_cursor"] is None
    assert locs(api.get("/v2/spot/bids", params={"project": ML_TEAM, "status": "running"})) == [["query", "status"]]
    assert api.get("/v2/spot/bids/bid_unknown").json() == {"detail": "Bid not found"}


def test_idempotency_key_makes_one_bid(api: httpx.Client, fake: FakeMithril) -> None:
    headers = {"Idempotency-Key": "flow-bid-1"}
    first = api.post("/v2/spot/bids", json=bid_body(fake), headers=headers)
    again = api.post("/v2/spot/bids", json=bid_body(fake), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert list(fake.bids) == [first.json()["fid"]]
    assert [r.headers["idempotency-key"] for r in fake.requests] == ["flow-bid-1", "flow-bid-1"]
    other = api.post("/v2/spot/bids", json=bid_body(fake, name="other"), headers=headers)
    assert other.status_code == 422 and "different request body" in other.json()["detail"]


def test_schema_errors_carry_loc(api: httpx.Client, fake: FakeMithril) -> None:
    body = bid_body(fake, instance_quantity="2", launch_specification={"volumes": [], "typo": 1})
    del body["name"]
    response = api.post("/v2/spot/bids", json=body)
    assert locs(response) == [["body", "instance_quantity"], ["body", "launch_specification", "ssh_keys"],
                              ["body", "launch_specification", "typo"], ["body", "name"]]
    assert [d["type"] for d in response.json()["detail"]] == ["int_type", "missing", "extra_forbidden", "missing"]
    assert locs(api.post("/v2/spot/bids", content=b"{nope", headers={"Content-Type": "application/json"})) == [
        ["body", 1]]
    assert fake.bids == {}


def test_placement_spec_is_accepted_and_recorded(api: httpx.Client, fake: FakeMithril) -> None:
    bid = create_bid(api, fake, placement_spec={"affinity": "cluster"})
    assert "placement_spec" not in bid
    assert fake.requests[-1].json["placement_spec"] == {"affinity": "cluster"}


def test_unknown_project_is_404(api: httpx.Client, fake: FakeMithril) -> None:
    response = api.post("/v2/spot/bids", json=bid_body(fake, project="proj_unknown"))
    assert (response.status_code, response.json()) == (404, {"detail": "Project not found"})


@pytest.mark.parametrize(("change", "loc", "words"), [
    ({"instance_type": "it_unknown"}, ["body", "instance_type"], "not offered"),
    ({"region": "us-central1-b", "volumes": []}, ["body", "instance_type"], "not offered"),
    ({"limit_price": "$7.99"}, ["body", "limit_price"], "minimum"),
    ({"limit_price": "24.00"}, ["body", "limit_price"], "dollar amount"),
    ({"instance_quantity": 0}, ["body", "instance_quantity"], "greater than or equal"),
    ({"name": "Llama FT"}, ["body", "name"], "Invalid name"),
    ({"ssh_keys": ["sshkey_unknown"]}, ["body", "launch_specification", "ssh_keys", 0], "not found"),
    ({"ssh_keys": ["research:alice-laptop"]}, ["body", "launch_specification", "ssh_keys", 0], "not found"),
    ({"volumes": ["vol_unknown"]}, ["body", "launch_specification", "volumes", 0], "not found"),
    ({"volumes": ["ml-team:datasets"]}, ["body", "launch_specification", "volumes", 0], "us-central1-b"),
])
def test_referential_errors_name_the_field(api: httpx.Client, fake: FakeMithril, change: dict[str, Any],
                                           loc: list[Any], words: str) -> None:
    body, change = bid_body(fake), dict(change)
    for key, finder in (("ssh_keys", fake.ssh_key_fid), ("volumes", fake.volume_fid)):
        if key in change:
            # "project:name" stands for a seeded fid of that project.
            body["launch_specification"][key] = [finder(*v.split(":")) if ":" in v else v for v in change.pop(key)]
    body.update(change)
    response = api.post("/v2/spot/bids", json=body)
    assert locs(response) == [loc]
    assert words in response.json()["detail"][0]["msg"]
    assert fake.bids == {}


def test_minimum_price_is_configurable() -> None:
    with FakeMithril(min_prices={H100: "$30.00"}) as fake, httpx.Client(
            base_url=fake.url, headers={"Authorization": "Bearer fkey_test"}) as api:
        assert "minimum price $30.00" in api.post("/v2/spot/bids", json=bid_body(fake)).json()["detail"][0]["msg"]


def test_patch_price_pause_and_volumes(api: httpx.Client, fake: FakeMithril) -> None:
    bid = create_bid(api, fake)
    url = f"/v2/spot/bids/{bid['fid']}"
    assert api.patch(url, json={"limit_price": "$30.5"}).json()["limit_price"] == "$30.50"
    assert locs(api.patch(url, json={"limit_price": "$1.00"})) == [["body", "limit_price"]]
    assert locs(api.patch(url, json={"paused": "yes"})) == [["body", "paused"]]
    assert api.patch(url, json={"paused": True}).json()["status"] == "Paused"
    assert fake.live_bids(project="ml-team")[0]["status"] == "Paused"
    assert api.patch(url, json={"paused": False}).json()["status"] == "Open"
    assert api.patch(url, json={"volumes": []}).json()["launch_specification"]["volumes"] == []
    assert api.get(url).json()["limit_price"] == "$30.50"


def test_delete_twice_is_204_then_404(api: httpx.Client, fake: FakeMithril) -> None:
    bid = create_bid(api, fake)
    fake.run(bid["fid"])
    first = api.delete(f"/v2/spot/bids/{bid['fid']}")
    assert (first.status_code, first.content) == (204, b"")
    second = api.delete(f"/v2/spot/bids/{bid['fid']}")
    assert (second.status_code, second.json()) == (404, {"detail": "Bid not found"})
    gone = api.get(f"/v2/spot/bids/{bid['fid']}").json()
    assert gone["status"] == "Terminated" and gone["deactivated_at"].endswith("Z")
    assert {i["status"] for i in fake.instances.values()} == {"STATUS_TERMINATED"}
    assert fake.live_bids() == []
    assert api.patch(f"/v2/spot/bids/{bid['fid']}", json={"paused": True}).status_code == 404


# Instances and the lifecycle.


def instances(api: httpx.Client, *bid_fids: str, spelling: str = "bid_fid_in") -> list[dict[str, Any]]:
    found, cursor = [], None
    while True:
        params = [("project", ML_TEAM), *((spelling, fid) for fid in bid_fids)]
        page = api.get("/v2/instances", params=params + ([("next_cursor", cursor)] if cursor else [])).json()
        found += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def test_allocate_then_run_shows_ssh_destinations(api: httpx.Client, fake: FakeMithril) -> None:
    bid = create_bid(api, fake, instance_quantity=3)
    other = create_bid(api, fake, name="other", instance_quantity=1)
    assert instances(api, bid["fid"]) == []

    assert fake.allocate(bid["fid"]) == [bid["fid"]]
    allocated = api.get(f"/v2/spot/bids/{bid['fid']}").json()
    assert allocated["status"] == "Allocated" and len(allocated["instances"]) == 3
    starting = instances(api, bid["fid"])
    assert [i["status"] for i in starting] == ["STATUS_STARTING"] * 3
    assert all(i["ssh_destination"] is None and i["bid"] == bid["fid"] for i in starting)
    assert set(starting[0]) >= {"fid", "name", "project", "created_at", "instance_type", "region", "bid", "status",
                                "ssh_destination", "private_ip"}

    assert fake.run(bid["fid"], ssh_destination=["10.1.0.1:22", "10.1.0.2:22", "10.1.0.3"]) == [bid["fid"]]
    running = instances(api, bid["fid"], spelling="bid_fid_in[]")
    assert [i["ssh_destination"] for i in running] == ["10.1.0.1:22", "10.1.0.2:22", "10.1.0.3"]
    assert all(i["status"] == "STATUS_RUNNING" and i["private_ip"].startswith("10.0.") for i in running)
    assert [i["fid"] for i in running] == allocated["instances"]

    fake.run(other["fid"])
    assert len(instances(api)) == 4
    assert [i["ssh_destination"] for i in instances(api, other["fid"])] == ["127.0.0.1:2222"]
    with pytest.raises(ValueError, match="not Open"):
        fake.allocate(bid["fid"])


def test_preempt_then_complete(api: httpx.Client, fake: FakeMithril) -> None:
    bid = create_bid(api, fake, instance_quantity=1)
    fake.run()
    assert fake.preempt() == [bid["fid"]]
    assert api.get(f"/v2/spot/bids/{bid['fid']}").json()["status"] == "Preempting"
    assert instances(api, bid["fid"])[0]["status"] == "STATUS_PREEMPTING"
    fake.preempt(bid["fid"], complete=True)
    assert api.get(f"/v2/spot/bids/{bid['fid']}").json()["instances"] == []
    assert [(i["status"], i["ssh_destination"]) for i in fake.instances.values()] == [("STATUS_PREEMPTED", None)]


def test_auto_advance_moves_a_bid_every_n_polls(api: httpx.Client, fake: FakeMithril) -> None:
    fake.auto_advance(polls=2, ssh_destination="127.0.0.1:2200")
    bid = create_bid(api, fake, instance_quantity=1)
    url = f"/v2/spot/bids/{bid['fid']}"
    statuses = [api.get(url).json()["status"] for _ in range(2)]
    assert statuses == ["Open", "Allocated"]
    assert instances(api, bid["fid"])[0]["ssh_destination"] is None
    assert instances(api, bid["fid"])[0]["ssh_destination"] == "127.0.0.1:2200"


# Injected faults.


def test_500_and_503_do_not_apply(api: httpx.Client, fake: FakeMithril) -> None:
    fake.fail_next("POST", "/v2/spot/bids", "500")
    fake.fail_next("POST", "/v2/spot/bids", "503")
    assert api.post("/v2/spot/bids", json=bid_body(fake)).status_code == 500
    assert api.post("/v2/spot/bids", json=bid_body(fake)).status_code == 503
    assert fake.bids == {}
    assert api.post("/v2/spot/bids", json=bid_body(fake)).status_code == 201
    assert [r.status for r in fake.requests] == [500, 503, 201]


def test_apply_then_500_applies_and_a_retry_with_the_key_finds_it(api: httpx.Client, fake: FakeMithril) -> None:
    fake.fail_next("POST", "/v2/spot/bids", "apply_then_500")
    headers = {"Idempotency-Key": "flow-bid-2"}
    failed = api.post("/v2/spot/bids", json=bid_body(fake), headers=headers)
    assert (failed.status_code, failed.text) == (500, "Internal Server Error")
    assert len(fake.bids) == 1
    retried = api.post("/v2/spot/bids", json=bid_body(fake), headers=headers)
    assert retried.status_code == 201 and list(fake.bids) == [retried.json()["fid"]]


def test_apply_then_hang_outlives_the_client_deadline(fake: FakeMithril) -> None:
    fake.fail_next("POST", "/v2/spot/bids", "apply_then_hang", hang_s=1.0)
    with httpx.Client(base_url=fake.url, headers={"Authorization": "Bearer fkey_test"}, timeout=0.2) as api:
        with pytest.raises(httpx.ReadTimeout):
            api.post("/v2/spot/bids", json=bid_body(fake))
    assert len(fake.live_bids()) == 1
    assert fake.requests[-1].status is None


def test_drop_closes_without_applying(api: httpx.Client, fake: FakeMithril) -> None:
    fake.fail_next("DELETE", "/v2/spot/bids/", "drop")
    bid = create_bid(api, fake)
    with pytest.raises(httpx.RemoteProtocolError):
        api.delete(f"/v2/spot/bids/{bid['fid']}")
    assert fake.bids[bid["fid"]]["status"] == "Open"
    assert api.delete(f"/v2/spot/bids/{bid['fid']}").status_code == 204


def test_429_403_and_422_answers(api: httpx.Client, fake: FakeMithril) -> None:
    fake.fail_next("GET", "/v2/spot/availability", "429", times=2)
    fake.fail_next("POST", "/v2/spot/bids", "403_quota")
    fake.fail_next("POST", "/v2/spot/bids", "422", detail=[{"loc": ["body", "limit_price"], "msg": "Bid price "
                                                            "insufficient", "type": "value_error"}])
    for _ in range(2):
        limited = api.get("/v2/spot/availability")
        assert (limited.status_code, limited.headers["Retry-After"]) == (429, "0")
    assert api.get("/v2/spot/availability").status_code == 200
    quota = api.post("/v2/spot/bids", json=bid_body(fake))
    assert (quota.status_code, quota.json()) == (403, {"detail": f"Quota exceeded for instance type {H100}"})
    assert locs(api.post("/v2/spot/bids", json=bid_body(fake))) == [["body", "limit_price"]]
    assert fake.bids == {}
    with pytest.raises(ValueError, match="unknown fault"):
        fake.fail_next("GET", "/", "teapot")


# Volumes, introspection and shutdown.


def test_volumes_create_idempotently_and_delete(api: httpx.Client, fake: FakeMithril) -> None:
    body = {"name": "scratch-1", "project": ML_TEAM, "disk_interface": "Block", "region": REGION, "size_gb": 50}
    headers = {"Idempotency-Key": "flow-vol-1"}
    made = api.post("/v2/volumes", json=body, headers=headers)
    assert made.status_code == 201 and made.json()["fid"].startswith("vol_")
    assert api.post("/v2/volumes", json=body, headers=headers).json() == made.json()
    assert made.json()["capacity_gb"] == 50 and made.json()["interface"] == "Block"
    assert locs(api.post("/v2/volumes", json={**body, "name": "Scratch_1"})) == [["body", "name"]]
    assert locs(api.post("/v2/volumes", json={**body, "disk_interface": "block", "size_gb": 0})) == [
        ["body", "disk_interface"], ["body", "size_gb"]]
    assert len(api.get("/v2/volumes", params={"project": ML_TEAM}).json()) == 3

    fid = made.json()["fid"]
    assert api.delete(f"/v2/volumes/{fid}").status_code == 204
    assert api.delete(f"/v2/volumes/{fid}").json() == {"detail": "Volume not found"}
    assert fake.volumes[fid]["deleted_at"] is not None
    assert len(api.get("/v2/volumes", params={"project": ML_TEAM}).json()) == 2

    bid = create_bid(api, fake)
    ckpts = fake.volume_fid("ml-team", "ckpts")
    assert fake.volumes[ckpts]["bids"] == [bid["fid"]]
    assert api.delete(f"/v2/volumes/{ckpts}").status_code == 409


def test_requests_are_recorded_in_order(api: httpx.Client, fake: FakeMithril) -> None:
    api.get("/v2/instances", params=[("project", ML_TEAM), ("bid_fid_in", "bid_a"), ("bid_fid_in", "bid_b")])
    create_bid(api, fake)
    listing, post = fake.requests
    assert (listing.method, listing.path, listing.json) == ("GET", "/v2/instances", None)
    assert listing.query == {"project": [ML_TEAM], "bid_fid_in": ["bid_a", "bid_b"]}
    assert listing.headers["authorization"] == "Bearer fkey_test"
    assert (post.method, post.json["name"], post.status) == ("POST", "llama-ft-3fa9c1", 201)


def test_close_frees_the_port() -> None:
    fake = FakeMithril()
    url = fake.url
    fake.close()
    fake.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v2/projects", timeout=1)
