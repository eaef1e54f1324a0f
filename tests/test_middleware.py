from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_every_response_carries_a_request_id_and_varies_on_htmx(client) -> None:
    response = client.get("/accounts/login/")
    assert len(response["X-Request-ID"]) == 32
    assert "HX-Request" in response["Vary"]


@pytest.mark.django_db
def test_a_well_formed_incoming_request_id_is_kept_and_a_bad_one_replaced(client) -> None:
    kept = client.get("/accounts/login/", HTTP_X_REQUEST_ID="edge-1234abcd")
    assert kept["X-Request-ID"] == "edge-1234abcd"
    replaced = client.get("/accounts/login/", HTTP_X_REQUEST_ID="<script>")
    assert replaced["X-Request-ID"] != "<script>"
