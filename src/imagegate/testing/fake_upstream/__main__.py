"""Serve one fake vendor on 127.0.0.1: ``python -m imagegate.testing.fake_upstream --vendor X``."""

from __future__ import annotations

import argparse

import uvicorn

from imagegate.testing.fake_upstream import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vendor", required=True, help="openai, gemini, bfl, … (module name)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    uvicorn.run(create_app(args.vendor), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
