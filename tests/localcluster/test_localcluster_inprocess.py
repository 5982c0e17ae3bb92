"""The emulator's in-process interface: async start/stop, kubeconfig, direct store access."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import aiohttp
import yaml

from extraction_operator.localcluster.apiserver import ApiServer, ApiServerThread


async def test_async_server_start_url_kubeconfig_and_stop(tmp_path: Path) -> None:
    server = ApiServer()
    await server.start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.port != 0
        config = yaml.safe_load(server.write_kubeconfig(tmp_path / "kubeconfig").read_text())
        assert config["clusters"][0]["cluster"]["server"] == server.url
        assert config["contexts"][0]["context"]["namespace"] == "default"
        async with aiohttp.ClientSession() as session, session.get(server.url + "/version") as rsp:
            assert rsp.status == 200
    finally:
        await server.stop()


async def test_store_writes_from_another_thread_reach_watchers_in_order() -> None:
    async with ApiServer() as server:
        configmaps = server.store.find_type("v1", "ConfigMap")
        rv = str(server.store.resource_version)
        url = f"{server.url}/api/v1/namespaces/default/configmaps"
        params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "5"}

        def write() -> None:
            for index in range(20):
                server.store.create(configmaps, "default", {"metadata": {"name": f"t{index}"}})

        versions: list[int] = []
        async with aiohttp.ClientSession() as session, session.get(url, params=params) as rsp:
            writer = threading.Thread(target=write)
            writer.start()
            # Writes from the loop interleave with the thread's writes.
            for index in range(20):
                server.store.create(configmaps, "default", {"metadata": {"name": f"l{index}"}})
                await asyncio.sleep(0)
            async for line in rsp.content:
                versions.append(int(json.loads(line)["object"]["metadata"]["resourceVersion"]))
                if len(versions) == 40:
                    break
            writer.join()
        assert versions == sorted(versions)
        assert len(set(versions)) == 40


def test_thread_server_exposes_store_faults_and_log(tmp_path: Path) -> None:
    with ApiServerThread() as server:
        namespaces = server.store.find_type("v1", "Namespace")
        names = [
            json.loads(s.raw)["metadata"]["name"] for s in server.store.list(namespaces, None)[0]
        ]
        assert "default" in names
        server.faults.fail("get", "namespaces", times=1)
        assert server.faults.rules
        assert server.write_kubeconfig(tmp_path / "k").exists()
        assert len(server.request_log) == 0
