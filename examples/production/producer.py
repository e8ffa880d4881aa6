"""A producer app: enqueue resize tasks and a report that waits for all of them.

Start the worker daemons first (see tasks.py), then:  python -m examples.production.producer
"""

from ceylon_redis import Client


def main() -> None:
    with Client() as client:  # CEYLON_REDIS_URL / REDIS_URL, else redis://localhost:6379/0
        paths = [f"img/{i}.png" for i in range(20)]
        ids = client.enqueue_many("resize", [{"path": p} for p in paths])
        report_id = client.enqueue("report", {"title": "daily"}, depends_on=ids)
        result = client.wait(report_id, timeout=60)
        print(f"report: success={result.success} output={result.output}")


if __name__ == "__main__":
    main()
