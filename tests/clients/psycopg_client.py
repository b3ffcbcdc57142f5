"""psycopg 3 through Throome (transaction pooling): server-side prepared statements from
its automatic statement cache (prepare_threshold=0, a small cache so it DEALLOCATEs), a
transaction, COPY, and a wrong password.  Usage: psycopg_client.py PORT; prints OK."""
import sys

import psycopg

port = sys.argv[1]
dsn = f"host=127.0.0.1 port={port} user=alice password=wonderland dbname=postgres"

with psycopg.connect(dsn, prepare_threshold=0) as conn:
    conn.prepared_max = 3  # evictions send DEALLOCATE through the proxy
    with conn.cursor() as cur:
        for i in range(20):
            cur.execute(f"SELECT %s::int + {i % 6}", (i,))
            assert cur.fetchone()[0] == i + i % 6
        cur.execute("CREATE TABLE IF NOT EXISTS pyt (id int, name text)")
        with cur.copy("COPY pyt (id, name) FROM STDIN") as copy:
            copy.write_row((1, "one"))
            copy.write_row((2, "two"))
        cur.execute("SELECT count(*) FROM pyt")
        assert cur.fetchone()[0] == 2
    with conn.transaction():
        conn.execute("INSERT INTO pyt VALUES (3, 'three')")
    assert conn.execute("SELECT count(*) FROM pyt").fetchone()[0] == 3
    # Prepared and run on the server, this drops every statement there, the proxy's too:
    # statements used before must be prepared again, not assumed present.
    conn.execute("DEALLOCATE ALL")
    for _ in range(2):
        assert conn.execute("SELECT %s::int + 0", (7,)).fetchone()[0] == 7
    assert conn.execute("SELECT 41 + 1").fetchone()[0] == 42

try:
    psycopg.connect(dsn.replace("wonderland", "nope"))
    raise SystemExit("a wrong password was accepted")
except psycopg.OperationalError as e:
    assert "password authentication failed" in str(e), e

print("OK")
