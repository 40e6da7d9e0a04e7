"""Versioned schema. Each migration runs once, in order, inside one transaction;
`PRAGMA user_version` records how far a database has come. Append, never edit."""

MIGRATIONS: list[str] = [
    # 1: the initial schema
    """
    CREATE TABLE pipelines (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        config TEXT NOT NULL,              -- PipelineConfig as JSON
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE services (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        pipeline_id INTEGER NOT NULL REFERENCES pipelines(id),
        config TEXT NOT NULL,              -- ServiceConfig as JSON
        pinned TEXT NOT NULL DEFAULT '{}', -- environment -> sha pinned by a rollback
        next_run_number INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        service_id INTEGER NOT NULL REFERENCES services(id),
        number INTEGER NOT NULL,
        trigger TEXT NOT NULL,
        kind TEXT NOT NULL,
        sha TEXT NOT NULL,
        branch TEXT,
        pr_number INTEGER,
        author TEXT,
        message TEXT,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        error TEXT,
        rerun_of INTEGER REFERENCES runs(id),
        rerun_from_stage TEXT,
        actor TEXT,
        UNIQUE (service_id, number)
    );
    CREATE INDEX runs_by_service ON runs(service_id, id DESC);
    CREATE INDEX runs_by_status ON runs(status, id);
    CREATE TABLE stages (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        position INTEGER NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        exit_code INTEGER,
        container_id TEXT,
        error TEXT,
        reused_from_run INTEGER,
        executor_state TEXT,               -- JSON an executor needs to re-attach
        UNIQUE (run_id, position)
    );
    CREATE TABLE log_lines (
        id TEXT PRIMARY KEY,               -- ULID: time-ordered, a resumable cursor
        run_id INTEGER NOT NULL,
        stage TEXT NOT NULL,
        stream TEXT NOT NULL,
        text TEXT NOT NULL,
        ts TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX log_lines_by_run ON log_lines(run_id, stage, id);
    CREATE INDEX log_lines_by_ts ON log_lines(ts);
    CREATE TABLE deployments (
        id INTEGER PRIMARY KEY,
        service_id INTEGER NOT NULL REFERENCES services(id),
        environment TEXT NOT NULL,
        sha TEXT NOT NULL,
        image TEXT NOT NULL,
        run_id INTEGER,
        status TEXT NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT,
        message TEXT,
        author TEXT,
        committed_at TEXT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        error TEXT,
        target_state TEXT                  -- JSON: colour, container, task definition…
    );
    CREATE INDEX deployments_by_service_env ON deployments(service_id, environment, id DESC);
    CREATE TABLE approvals (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL UNIQUE REFERENCES runs(id),
        status TEXT NOT NULL,
        candidate_sha TEXT NOT NULL,
        production_sha TEXT,
        commits TEXT NOT NULL DEFAULT '[]',
        staging_health TEXT,
        requested_at TEXT NOT NULL,
        expires_at TEXT,
        actor TEXT,
        decided_at TEXT,
        comment TEXT
    );
    CREATE INDEX approvals_by_status ON approvals(status);
    CREATE TABLE webhook_deliveries (
        delivery_id TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        received_at TEXT NOT NULL,
        service_id INTEGER,
        run_id INTEGER,
        outcome TEXT NOT NULL
    );
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,   -- sha256 of the token; the token is shown once
        created_at TEXT NOT NULL,
        last_used_at TEXT,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE audit_events (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT
    );
    CREATE INDEX audit_by_ts ON audit_events(ts);
    CREATE TABLE poll_state (
        service_id INTEGER NOT NULL,
        ref TEXT NOT NULL,
        sha TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (service_id, ref)
    );
    CREATE TABLE kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: retention prunes by ULID (ids carry their time), so the ts index only slowed
    # every log insert down.
    """
    DROP INDEX IF EXISTS log_lines_by_ts;
    """,
    # 3: canary analysis, one row per colour per measured window (agent/deploy/canary.py).
    """
    CREATE TABLE canary_measurements (
        id INTEGER PRIMARY KEY,
        deployment_id INTEGER NOT NULL REFERENCES deployments(id),
        step INTEGER NOT NULL,
        weight INTEGER NOT NULL,
        role TEXT NOT NULL,
        colour TEXT NOT NULL,
        window_start TEXT NOT NULL,
        window_end TEXT NOT NULL,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        p50_ms REAL,
        p95_ms REAL,
        verdict TEXT NOT NULL,
        rule TEXT NOT NULL
    );
    CREATE INDEX canary_by_deployment ON canary_measurements(deployment_id, id);
    """,
    # 4: which executor ran each stage ("local" = on the agent's host, not isolated).
    """
    ALTER TABLE stages ADD COLUMN executor TEXT;
    """,
    # 5: monorepos: why each service of a repository ran or not, per push / PR head /
    # poll / `trigger --all` ("batch": the services decided together, for deploy order).
    """
    CREATE TABLE change_decisions (
        id INTEGER PRIMARY KEY,
        batch TEXT NOT NULL,
        service_id INTEGER NOT NULL,
        trigger TEXT NOT NULL,
        sha TEXT NOT NULL,
        branch TEXT,
        base_sha TEXT,                     -- compared against; NULL: nothing to compare
        base_kind TEXT NOT NULL,           -- last_success | merge_base | none | forced
        ran INTEGER NOT NULL,
        reason TEXT NOT NULL,
        matched TEXT NOT NULL DEFAULT '[]',  -- the first matching paths (JSON list)
        matched_count INTEGER NOT NULL DEFAULT 0,
        changed_count INTEGER,
        run_id INTEGER,
        created_at TEXT NOT NULL
    );
    CREATE INDEX change_decisions_by_service ON change_decisions(service_id, id DESC);
    CREATE INDEX change_decisions_by_run ON change_decisions(run_id);
    CREATE INDEX change_decisions_by_batch ON change_decisions(batch);
    """,
    # 6: test results from JUnit reports (agent/engine/test_stage.py): one row per test
    # of a service, one per test per run/stage/attempt, one summary per collection, and
    # the quarantine (who, why, until when).
    """
    CREATE TABLE test_cases (
        id INTEGER PRIMARY KEY,
        service_id INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
        classname TEXT NOT NULL,
        name TEXT NOT NULL,
        UNIQUE (service_id, classname, name)
    );
    CREATE TABLE test_results (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        stage TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        case_id INTEGER NOT NULL REFERENCES test_cases(id) ON DELETE CASCADE,
        outcome TEXT NOT NULL,
        duration_s REAL,
        message TEXT,
        trace TEXT,
        quarantined INTEGER NOT NULL DEFAULT 0,
        log_line TEXT,
        PRIMARY KEY (run_id, stage, attempt, case_id)
    ) WITHOUT ROWID;
    CREATE INDEX test_results_by_case ON test_results(case_id, run_id DESC);
    CREATE TABLE test_reports (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        stage TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        service_id INTEGER NOT NULL,
        code_key TEXT NOT NULL,            -- the service's tree at the run's sha
        passed INTEGER NOT NULL, failed INTEGER NOT NULL, errors INTEGER NOT NULL,
        skipped INTEGER NOT NULL, flaky INTEGER NOT NULL, quarantined INTEGER NOT NULL,
        duration_s REAL NOT NULL,          -- the attempt's wall time
        retried INTEGER NOT NULL DEFAULT 0,  -- a retry replaced this attempt
        notes TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        PRIMARY KEY (run_id, stage, attempt)
    );
    CREATE INDEX test_reports_by_service ON test_reports(service_id, created_at);
    CREATE TABLE test_quarantine (
        case_id INTEGER PRIMARY KEY REFERENCES test_cases(id) ON DELETE CASCADE,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    """,
    # 7: the fingerprint of the config a run was made with (store.models.config_fingerprint):
    # a rerun says whether the config changed by content, not by timestamps.
    """
    ALTER TABLE runs ADD COLUMN config_hash TEXT;
    """,
    # 8: a test's history walks its service's collections by run and finds each result by
    # primary key: no index over every result by test (each run's 20,000 inserts touched
    # a page per test of it); collections by service in run order instead.
    """
    DROP INDEX IF EXISTS test_results_by_case;
    DROP INDEX IF EXISTS test_reports_by_service;
    CREATE INDEX test_reports_by_service ON test_reports(service_id, run_id DESC, attempt DESC);
    """,
    # 9: why a queued run has not started yet ("waiting for the Docker engine …"); cleared
    # when it leaves `queued`.
    """
    ALTER TABLE runs ADD COLUMN waiting TEXT;
    """,
    # 10: the log search index (store.log_index): each (run, stage) a range of row ids,
    # each row id the line it indexes and its text. The FTS5 table itself is made on
    # open, where an SQLite without the trigram tokenizer can fall back to the scan.
    """
    CREATE TABLE log_search_scopes (
        key INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL,
        stage TEXT NOT NULL,
        complete INTEGER NOT NULL,         -- 0: lines came out of id order: scanned
        UNIQUE (run_id, stage)
    );
    CREATE TABLE log_search_rows (
        rowid INTEGER PRIMARY KEY,
        line_id TEXT NOT NULL,
        text TEXT NOT NULL                 -- the FTS5 table's content (external content)
    );
    CREATE INDEX log_search_rows_by_line ON log_search_rows(line_id);
    """,
    # 11: since when a queued run waits (its bound holds across agent restarts).
    """
    ALTER TABLE runs ADD COLUMN waiting_since TEXT;
    """,
]
