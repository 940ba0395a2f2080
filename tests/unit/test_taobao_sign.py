"""TOP signing: the published and verified vectors, the relay helper, and tamper evidence."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmhub_adapter.errors import Unauthorized
from dmhub_adapter.mapping.config import load_mapping
from dmhub_adapter.sources.base import Account
from dmhub_adapter.sources.taobao import TaobaoSource, format_timestamp, signed_request, top_sign
from dmhub_adapter.webhook import WebhookRequest

DOC_PARAMS = {
    "app_key": "12345678",
    "fields": "num_iid,title,nick,price,num",
    "format": "json",
    "method": "taobao.item.seller.get",
    "num_iid": "11223344",
    "session": "test",
    "timestamp": "2016-01-01 12:00:00",
    "v": "2.0",
}
SPI_PARAMS = {
    "app_key": "testerp_appkey",
    "customerId": "stub-cust-code",
    "format": "xml",
    "method": "taobao.qimen.deliveryorder.create",
    "sign_method": "md5",
    "timestamp": "2015-04-26 00:00:07",
    "v": "2.0",
}
SPI_BODY = (
    '<?xml version="1.0" encoding="utf-8"?><request><deliveryOrder><deliveryOrderCode>T123</deliveryOrderCode>'
    "<buyerNick>张*</buyerNick></deliveryOrder></request>"
)
DEMO = {"appKey": "12345678", "appSecret": "helloworld"}
NOW = 1718712102.0  # 2024-06-18 20:01:42 GMT+8


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("md5", "66987CB115214E59E6EC978214934FB8"),  # the TOP documentation's own example
        ("hmac", "D56D7858309C31B6251083A874D48273"),
        ("hmac-sha256", "04DB15AD0774D5CFCE2C837DE43E3FCEA9011ED74F3038FB6AB5F3C4CEA119E8"),
    ],
)
def test_top_api_vectors(method: str, expected: str) -> None:
    assert top_sign({**DOC_PARAMS, "sign_method": method}, "helloworld", method) == expected


def test_spi_vector_with_body_utf8_gbk_and_without_body() -> None:
    assert top_sign(SPI_PARAMS, "test", "md5", SPI_BODY) == "E2D051EDB41095E6D481FAE71F53F4E7"
    assert top_sign(SPI_PARAMS, "test", "md5", SPI_BODY, charset="gbk") == "33D2481F5F4FDA5D1CA80863075F78BE"
    assert top_sign(SPI_PARAMS, "test", "md5") == "BA2DA24E819BAC98EEA37F231C8F0E5A"


def test_body_bytes_are_decoded_in_the_charset() -> None:
    assert top_sign(SPI_PARAMS, "test", "md5", SPI_BODY.encode("gbk"), charset="gbk") == (
        "33D2481F5F4FDA5D1CA80863075F78BE"
    )
    assert top_sign(SPI_PARAMS, "test", "md5", SPI_BODY.encode("utf-8")) == "E2D051EDB41095E6D481FAE71F53F4E7"


def test_hmac_paths_match_the_rfc_vectors() -> None:
    # RFC 2202 case 2 and RFC 4231 case 2: key "Jefe", data "what do ya want for nothing?".
    params = {"what": " do ya want for nothing?"}
    assert top_sign(params, "Jefe", "hmac") == "750C783E6AB0B503EAA86E310A5DB738"
    assert top_sign(params, "Jefe", "hmac-sha256") == (
        "5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843"
    )


def test_sign_is_excluded_and_empty_values_follow_the_chosen_canonical_form() -> None:
    base = top_sign(DOC_PARAMS, "helloworld")
    assert top_sign({**DOC_PARAMS, "sign": "ANYTHING"}, "helloworld") == base
    assert top_sign({**DOC_PARAMS, "empty": ""}, "helloworld") == base
    assert top_sign({**DOC_PARAMS, "empty": ""}, "helloworld", keep_empty=True) != base


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="sign_method"):
        top_sign(DOC_PARAMS, "helloworld", "sha1")


def test_format_timestamp_is_gmt8() -> None:
    assert format_timestamp(0) == "1970-01-01 08:00:00"
    assert format_timestamp(NOW) == "2024-06-18 20:01:42"


@pytest.mark.parametrize("method", ["md5", "hmac", "hmac-sha256"])
def test_signed_request_is_complete_and_verifiable(method: str) -> None:
    body = b'{"topic":"taobao_trade_TradeCreate","content":"{}"}'
    raw_query = signed_request(DEMO, body, method, NOW)
    params = dict(parse_qsl(raw_query))
    assert params["app_key"] == "12345678"
    assert params["sign_method"] == method
    assert params["timestamp"] == "2024-06-18 20:01:42"
    assert (params["format"], params["v"]) == ("json", "2.0")
    unsigned = {k: v for k, v in params.items() if k != "sign"}
    assert params["sign"] == top_sign(unsigned, "helloworld", method, body)
    # The verifier accepts exactly this request.
    source, account = _source()
    source.verify(_request(body, raw_query), account, body.decode(), "utf-8")


def test_signed_request_accepts_a_ready_timestamp_and_extra_params() -> None:
    raw_query = signed_request(DEMO, b"{}", "hmac", "2024-06-18 20:01:42", extra_params={"relay": "erp-1"})
    params = dict(parse_qsl(raw_query))
    assert params["relay"] == "erp-1" and params["timestamp"] == "2024-06-18 20:01:42"
    assert params["sign"] == top_sign({k: v for k, v in params.items() if k != "sign"}, "helloworld", "hmac", b"{}")


# ---------------------------------------------------------------------------------------------
# Tamper evidence


def _source() -> tuple[TaobaoSource, Account]:
    mapping = load_mapping("taobao")
    assert mapping is not None
    return TaobaoSource(mapping), Account("taobao", "demo", mapping, DEMO)


def _request(body: bytes, raw_query: str) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        source="taobao",
        account="demo",
        body=body,
        query=dict(parse_qsl(raw_query)),
        raw_query=raw_query,
        headers={"content-type": "application/json"},
        received_at=NOW,
    )


_SOURCE, _ACCOUNT = _source()
_ALPHABET = st.characters(codec="utf-8", exclude_characters="+")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.text(alphabet=_ALPHABET, min_size=1, max_size=200),
    method=st.sampled_from(["md5", "hmac", "hmac-sha256"]),
    data=st.data(),
)
def test_any_body_mutation_breaks_the_signature(body: str, method: str, data: st.DataObject) -> None:
    raw_query = signed_request(DEMO, body.encode(), method, NOW)
    _SOURCE.verify(_request(body.encode(), raw_query), _ACCOUNT, body, "utf-8")  # control
    mutation = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    index = data.draw(st.integers(0, len(body) - 1))
    if mutation == "replace":
        char = data.draw(_ALPHABET.filter(lambda c: c != body[index]))
        tampered = body[:index] + char + body[index + 1 :]
    elif mutation == "insert":
        tampered = body[:index] + data.draw(_ALPHABET) + body[index:]
    else:
        tampered = body[:index] + body[index + 1 :]
    with pytest.raises(Unauthorized):
        _SOURCE.verify(_request(tampered.encode(), raw_query), _ACCOUNT, tampered, "utf-8")


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(["md5", "hmac", "hmac-sha256"]),
    extra=st.dictionaries(st.sampled_from(["relay", "shop", "seq"]), st.text(_ALPHABET, min_size=1, max_size=8),
                          max_size=2),
    data=st.data(),
)
def test_any_query_mutation_breaks_the_signature(method: str, extra: dict[str, str], data: st.DataObject) -> None:
    body = b'{"topic":"taobao_trade_TradeBuyerPay","content":"{\\"tid\\":1}"}'
    params = dict(parse_qsl(signed_request(DEMO, body, method, NOW, extra_params=extra)))
    _SOURCE.verify(_request(body, urlencode(params)), _ACCOUNT, body.decode(), "utf-8")  # control
    signed = sorted(k for k in params if k not in ("sign", "app_key", "sign_method"))
    mutation = data.draw(st.sampled_from(["change", "drop", "add", "sign"]))
    tampered = dict(params)
    if mutation == "change":
        key = data.draw(st.sampled_from(signed))
        if key == "timestamp":
            # Another instant inside the window: only the signature can catch it.
            tampered[key] = format_timestamp(NOW + data.draw(st.integers(1, 500)))
        else:
            tampered[key] = params[key] + data.draw(st.text(_ALPHABET, min_size=1, max_size=3))
    elif mutation == "drop":
        del tampered[data.draw(st.sampled_from([k for k in signed if k != "timestamp"]))]
    elif mutation == "add":
        tampered["zz" + data.draw(st.text("abcdefgh", min_size=1, max_size=4))] = data.draw(
            st.text(_ALPHABET, min_size=1, max_size=4)
        )
    else:
        position = data.draw(st.integers(0, len(params["sign"]) - 1))
        digit = params["sign"][position]
        tampered["sign"] = params["sign"][:position] + ("0" if digit != "0" else "1") + params["sign"][position + 1 :]
    with pytest.raises(Unauthorized):
        _SOURCE.verify(_request(body, urlencode(tampered)), _ACCOUNT, body.decode(), "utf-8")
