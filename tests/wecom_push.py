"""WeCom callbacks encrypted by wechatpy's ``wechatpy.enterprise.crypto.WeChatCrypto`` (an
implementation independent of the adapter's), for the unit, security and e2e tests."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from defusedxml.ElementTree import fromstring
from wechatpy.enterprise.crypto import WeChatCrypto

# The official sample configuration (sbzhu/weworkapi_python callback/Sample.py).
SECRET = {"token": "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", "encodingAesKey": "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
          "corpId": "ww1436e0e65a779aee"}


def contact_xml(change_type: str = "add_external_contact", *, created: int, corp_id: str = SECRET["corpId"],
                external: str = "wmAJ2GCAAAXtWyujaWJHDDGi0mACHAAA", user: str = "zhangsan", **extra: str) -> str:
    fields = {"State": "crm_c7", "WelcomeCode": "WELCOMECODE"} if "add" in change_type else {}
    fields.update(extra)
    return ("<xml>"
            f"<ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
            f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[change_external_contact]]></Event>"
            f"<ChangeType><![CDATA[{change_type}]]></ChangeType><UserID><![CDATA[{user}]]></UserID>"
            f"<ExternalUserID><![CDATA[{external}]]></ExternalUserID>"
            + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()) + "</xml>")


def chat_xml(detail: str, members: list[str], *, created: int, corp_id: str = SECRET["corpId"]) -> str:
    items = "".join(f"<Item><![CDATA[{m}]]></Item>" for m in members)
    return ("<xml>"
            f"<ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
            f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA]]></ChatId>"
            f"<ChangeType><![CDATA[update]]></ChangeType><UpdateDetail><![CDATA[{detail}]]></UpdateDetail>"
            f"<JoinScene>1</JoinScene><QuitScene>0</QuitScene><MemChangeCnt>{len(members)}</MemChangeCnt>"
            f"<MemChangeList>{items}</MemChangeList></xml>")


def push(message_xml: str, *, timestamp: int | None = None, nonce: str = "1372623149",
         secret: dict[str, Any] | None = None, receive_id: str | None = None) -> tuple[dict[str, str], bytes]:
    """(query, body) of a callback as WeCom sends it, encrypted and signed by wechatpy.
    ``receive_id`` encrypts for another CorpID than the envelope names."""
    secret = secret or SECRET
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    crypto = WeChatCrypto(secret["token"], secret["encodingAesKey"], receive_id or secret["corpId"])
    reply = fromstring(crypto.encrypt_message(message_xml, nonce, stamp))
    encrypted, signature = reply.findtext("Encrypt"), reply.findtext("MsgSignature")
    assert encrypted and signature
    body = (f"<xml><ToUserName><![CDATA[{secret['corpId']}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]>"
            "</Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>").encode()
    return {"msg_signature": signature, "timestamp": stamp, "nonce": nonce}, body


def query_string(query: dict[str, str]) -> str:
    return urlencode(query)
