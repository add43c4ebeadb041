"""The one error type a request can fail with, shaped as OpenAI's error body so clients raise it.

`{"error": {"message", "type", "param", "code"}}` is what the `openai` client
parses into `BadRequestError` / `NotFoundError` with the message shown to the user.
"""
from __future__ import annotations


class RequestError(ValueError):
    """Bad input: answered with `status` and a JSON body naming the offending `param`."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_request", status: int = 400):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status

    def body(self) -> dict:
        return error_body(self.message, self.param, self.code,
                          "invalid_request_error" if self.status < 500 else "server_error")


def error_body(message: str, param: str | None = None, code: str | None = None,
               kind: str = "invalid_request_error") -> dict:
    # A message quoting the request may hold a lone surrogate, which no JSON encoder turns into UTF-8.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
