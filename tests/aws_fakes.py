"""A fake AWS for tests: moto's server behind :class:`FaultProxy`, a reverse proxy that injects faults.

The gateway talks real HTTP to it through ``AWS_ENDPOINT_URL``, so botocore's serializers, parsers, retry
handler and our error classification all run as they do against AWS. The proxy matches requests by AWS
action (the ``Action`` form field of query-protocol services such as EC2, auto scaling and STS, or the
``X-Amz-Target`` header of JSON-protocol services such as SQS), answers the next few with an error or a
delay, and can serve DescribeSpotPriceHistory itself from recorded prices (moto only has placeholders).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import threading
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web

from engine.price_history import parse_timestamp_s

# Headers that describe one hop of the connection, not the message: aiohttp sets its own.
_HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive"})
_EC2_NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"


@dataclass(slots=True)
class _Rule:
    action: str
    times: int
    delay_s: float = 0.0
    code: str | None = None
    status: int = 503
    message: str = ""

    def matches(self, action: str) -> bool:
        return self.times > 0 and (action == self.action or action.rsplit(".", 1)[-1] == self.action)


@dataclass(frozen=True, slots=True)
class _Price:
    instance_type: str
    availability_zone: str
    product_description: str
    spot_price: str
    timestamp_s: float


def _iso(timestamp_s: float) -> str:
    return dt.datetime.fromtimestamp(timestamp_s, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _listed(params: Mapping[str, str], name: str) -> set[str]:
    """Values of an EC2 query list parameter: ``InstanceType.1``, ``InstanceType.2``, ..."""
    return {value for key, value in params.items() if key.startswith(f"{name}.")}


def _scope(request: web.Request) -> list[str]:
    """The SigV4 credential scope ``[key id, date, region, service, "aws4_request"]`` of a request."""
    return request.headers.get("Authorization", "").partition("Credential=")[2].split(",")[0].split("/")


def _service_of(request: web.Request) -> str:
    scope = _scope(request)
    return scope[3] if len(scope) > 3 else ""


def _region_of(request: web.Request) -> str:
    scope = _scope(request)
    return scope[2] if len(scope) > 2 else ""


class FaultProxy:
    """An HTTP reverse proxy in front of ``upstream``, with its own thread and event loop.

    ``calls`` lists ``(action, params)`` of every request seen: the form fields (``InstanceType.1``, ...) of a
    query-protocol request, the JSON body of a JSON-protocol one.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._rules: list[_Rule] = []
        self._prices: list[_Price] | None = None
        self._page_size = 100
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._request_ids = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("FaultProxy is not started")
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        started = threading.Event()
        self._loop = loop
        self._thread = threading.Thread(target=self._run, args=(loop, started), name="fault-proxy", daemon=True)
        self._thread.start()
        if not started.wait(10) or self._port is None:
            raise RuntimeError("FaultProxy did not start")

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = self._port = None

    def _run(self, loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        runner, client = loop.run_until_complete(self._serve())
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(client.close())
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def _serve(self) -> tuple[web.AppRunner, aiohttp.ClientSession]:
        self._client = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._port = int(runner.addresses[0][1])
        return runner, self._client

    # -- configuration (from the test's thread) ----------------------------------------------------------
    def fail(self, action: str, code: str = "RequestLimitExceeded", status: int = 503, times: int = 1,
             message: str = "injected by FaultProxy") -> None:
        """Answer the next ``times`` requests for ``action`` with an AWS error ``code`` and HTTP ``status``."""
        with self._lock:
            self._rules.append(_Rule(action, times, code=code, status=status, message=message))

    def delay(self, action: str, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` requests for ``action`` for ``seconds`` before forwarding them."""
        with self._lock:
            self._rules.append(_Rule(action, times, delay_s=seconds))

    def serve_spot_prices(self, records: Iterable[Mapping[str, Any]], page_size: int) -> None:
        """Answer DescribeSpotPriceHistory from ``records`` (AWS-shaped dicts), ``page_size`` per page."""
        prices = []
        for record in records:
            stamp = record["Timestamp"]
            prices.append(_Price(
                record["InstanceType"], record["AvailabilityZone"], record.get("ProductDescription", "Linux/UNIX"),
                str(record["SpotPrice"]),
                stamp.timestamp() if isinstance(stamp, dt.datetime) else parse_timestamp_s(stamp),
            ))
        prices.sort(key=lambda p: p.timestamp_s, reverse=True)  # AWS answers newest first
        with self._lock:
            self._prices, self._page_size = prices, page_size

    def reset(self) -> None:
        """Forget every rule, the recorded prices and the calls seen."""
        with self._lock:
            self._rules.clear()
            self.calls.clear()
            self._prices = None

    def actions(self) -> list[str]:
        """The actions seen, in order."""
        with self._lock:
            return [action for action, _ in self.calls]

    # -- the proxy (on its own loop) ---------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        target = request.headers.get("X-Amz-Target")
        if target:
            action = target
            try:
                params: dict[str, Any] = json.loads(body or b"{}")
            except ValueError:
                params = {}
        else:
            params = dict(request.query)
            if request.content_type == "application/x-www-form-urlencoded":
                params.update(parse_qsl(body.decode(), keep_blank_values=True))
            action = str(params.get("Action", ""))
        with self._lock:
            self.calls.append((action, params))
            rule = next((rule for rule in self._rules if rule.matches(action)), None)
            if rule is not None:
                rule.times -= 1
            prices = self._prices if action == "DescribeSpotPriceHistory" else None
        if rule is not None and rule.delay_s:
            await asyncio.sleep(rule.delay_s)
        if rule is not None and rule.code is not None:
            return self._error(request, rule, json_protocol=bool(target))
        if prices is not None:
            return self._spot_price_page(prices, params, _region_of(request))
        return await self._forward(request, body)

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._client.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body, allow_redirects=False
        ) as answer:
            payload = await answer.read()
            reply_headers = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
            return web.Response(status=answer.status, body=payload, headers=reply_headers)

    def _error(self, request: web.Request, rule: _Rule, *, json_protocol: bool) -> web.Response:
        request_id = f"fault-{next(self._request_ids)}"
        code, message = escape(rule.code or ""), escape(rule.message)
        if json_protocol:
            doc = {"__type": f"com.amazonaws.sqs#{rule.code}", "message": rule.message}
            return web.Response(status=rule.status, text=json.dumps(doc), content_type="application/x-amz-json-1.0",
                                headers={"x-amzn-RequestId": request_id})
        if _service_of(request) == "ec2":
            xml = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                   f"<RequestID>{request_id}</RequestID></Response>")
        else:
            xml = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
                   f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>")
        return web.Response(status=rule.status, text=xml, content_type="text/xml")

    def _spot_price_page(self, prices: Sequence[_Price], params: Mapping[str, str], region: str) -> web.Response:
        """One page, as EC2 would: this region's pools, filtered, newest first, plus the price in force at
        StartTime per pool."""
        types, products = _listed(params, "InstanceType"), _listed(params, "ProductDescription")
        zone = params.get("AvailabilityZone")
        start_s = parse_timestamp_s(params["StartTime"]) if params.get("StartTime") else None
        selected, in_force = [], set()
        for price in prices:
            if (types and price.instance_type not in types) or (products and price.product_description not in products):
                continue
            if (zone and price.availability_zone != zone) or price.availability_zone[:-1] != region:
                continue
            pool = (price.instance_type, price.availability_zone, price.product_description)
            if start_s is None or price.timestamp_s >= start_s:
                selected.append(price)
            elif pool not in in_force:
                in_force.add(pool)
                selected.append(price)
        size = min(self._page_size, int(params.get("MaxResults") or self._page_size))
        offset = int(params.get("NextToken") or 0)
        page = selected[offset : offset + size]
        items = "".join(
            f"<item><instanceType>{p.instance_type}</instanceType>"
            f"<productDescription>{escape(p.product_description)}</productDescription>"
            f"<spotPrice>{p.spot_price}</spotPrice><timestamp>{_iso(p.timestamp_s)}</timestamp>"
            f"<availabilityZone>{p.availability_zone}</availabilityZone></item>"
            for p in page
        )
        more = offset + size < len(selected)
        xml = (f'<DescribeSpotPriceHistoryResponse xmlns="{_EC2_NAMESPACE}">'
               f"<requestId>prices-{next(self._request_ids)}</requestId>"
               f"<spotPriceHistorySet>{items}</spotPriceHistorySet>"
               f"<nextToken>{offset + size if more else ''}</nextToken></DescribeSpotPriceHistoryResponse>")
        return web.Response(text=xml, content_type="text/xml")


class FakeAws:
    """moto's server and a :class:`FaultProxy` in front of it; ``url`` is what AWS_ENDPOINT_URL points at."""

    def __init__(self, moto: Any, moto_url: str, proxy: FaultProxy) -> None:
        self._moto = moto
        self.moto_url = moto_url
        self.proxy = proxy

    @classmethod
    def start(cls) -> FakeAws:
        from moto.server import ThreadedMotoServer

        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        host, port = moto.get_host_and_port()
        proxy = FaultProxy(f"http://{host}:{port}")
        proxy.start()
        return cls(moto, f"http://{host}:{port}", proxy)

    @property
    def url(self) -> str:
        return self.proxy.url

    def reset(self) -> None:
        """Empty every moto backend and forget the proxy's rules and calls."""
        request = urllib.request.Request(f"{self.moto_url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass
        self.proxy.reset()

    def stop(self) -> None:
        self.proxy.stop()
        self._moto.stop()


def recorded_spot_prices(hours: float | None = None) -> list[dict[str, Any]]:
    """The bundled real p3.2xlarge spot prices (9 zones, from 2023-02-15) as AWS price history records:
    one record per pool for its first tick and for every tick its price changed, like AWS keeps them."""
    from engine.traces import bundled_market

    market = bundled_market()
    assert market.spot_price is not None
    last_tick = market.n_ticks if hours is None else min(market.n_ticks, int(hours * 3600 / market.tick_s) + 1)
    records = []
    for column, pool in enumerate(market.pools):
        previous = None
        for tick in range(last_tick):
            price = float(market.spot_price[tick, column])
            if price != previous:
                records.append({
                    "InstanceType": pool.instance_type,
                    "AvailabilityZone": pool.availability_zone,
                    "ProductDescription": "Linux/UNIX",
                    "SpotPrice": f"{price:.6f}",
                    "Timestamp": _iso(market.timestamp_s(tick)),
                })
                previous = price
    return records
