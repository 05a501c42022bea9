"""What the interop clients share: the demo's address and a token from its login."""

import json
import sys
import typing
import urllib.request

BASE = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:9116"


def login() -> str:
    body = json.dumps({"email": "demo@pathwatch.local", "password": "demo-password"})
    req = urllib.request.Request(
        BASE + "/auth/login", body.encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as answer:
        return json.load(answer)["access_token"]


def check(what: str, ok: bool, detail: str = "") -> None:
    if not ok:
        raise SystemExit(f"{what}: {detail}")


def by_type(union) -> dict:
    """The SDK's model for each event `type` of a (possibly Annotated) union."""
    while typing.get_origin(union) is typing.Annotated:
        union = typing.get_args(union)[0]
    models = {}
    for model in typing.get_args(union):
        for kind in typing.get_args(model.model_fields["type"].annotation):
            models[kind] = model
    return models


def strict(models: dict, event) -> dict:
    """Validates one event against its SDK model (the SDKs build them without validation,
    so a missing field would show only later, in a helper or in user code)."""
    data = event.to_dict()
    model = models.get(data.get("type"))
    check("event", model is not None, f"an event of type {data.get('type')!r} the SDK does not know")
    try:
        model.model_validate(data)
    except Exception as e:  # pydantic's ValidationError names each missing field
        raise SystemExit(f"{data['type']} does not validate as {model.__name__}: {e}")
    return data
