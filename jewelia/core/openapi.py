"""drf-spectacular hooks: document the one error shape on every operation."""

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details", "request_id"],  # request_id is always sent, maybe null
            "properties": {
                "code": {"type": "string", "example": "validation_error"},
                "message": {"type": "string"},
                "details": {"type": "object", "additionalProperties": True},
                "request_id": {"type": "string", "nullable": True},
            },
        }
    },
}

_COMMON_ERRORS = {
    "400": "Invalid input (validation_error, parse_error).",
    "401": "Missing or invalid credentials.",
    "403": "Authenticated but not allowed (missing scope or permission).",
    "404": "Not found.",
    "405": "Method not allowed.",
    "409": "Conflict with the resource's current state.",
    "413": "Request body too large.",
    "415": "Unsupported content type.",
    "429": "Rate limited; see Retry-After.",
    "500": "Unexpected error; quote the request id.",
}


def add_error_responses(result, generator, request, public):
    """Add the Error component and reference it from every operation's error responses."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in _COMMON_ERRORS.items():
                if status in {"413", "415"} and method in {"get", "delete"}:
                    continue
                responses.setdefault(
                    status, {"description": description, "content": {"application/json": {"schema": ref}}}
                )
    return result
