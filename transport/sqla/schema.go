package sqla

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// Kombu's tables (kombu/transport/sqlalchemy/models.py, as SQLAlchemy 1.4's
// metadata.create_all writes them; checked against Python Kombu 5.2.4 on
// PostgreSQL 15 and MariaDB 10.11):
//
//	<queue_tablename>    id INTEGER PRIMARY KEY (from the sequence
//	                     queue_id_sequence), name VARCHAR(200) UNIQUE
//	<message_tablename>  id INTEGER PRIMARY KEY (message_id_sequence),
//	                     visible BOOLEAN, "timestamp" TIMESTAMP (NULL until
//	                     the row is first updated: SQLAlchemy's onupdate),
//	                     payload TEXT NOT NULL (Kombu's JSON envelope),
//	                     version SMALLINT NOT NULL (SQLAlchemy's
//	                     version_id_col, 1 at insert, +1 per update),
//	                     queue_id INTEGER, FOREIGN KEY FK_kombu_message_queue
//	                     REFERENCES <queue_tablename>(id);
//	                     indexes ix_<t>_visible, ix_<t>_timestamp and
//	                     ix_kombu_message_timestamp_id (timestamp, id).
//
// The sequences keep their names whatever the table names, and on
// PostgreSQL the id columns have no default: every insert names
// nextval('message_id_sequence'). MariaDB (10.3+) gets the same sequences;
// MySQL, which has none, AUTO_INCREMENT ids. Which form a table has is read
// from the catalog when it exists, so tables created by Python Kombu, by
// an older SQLAlchemy or by us are all used as they are.
//
// Beyond Kombu we add one index, ix_<t>_kombu_go (queue_id, visible, id),
// that serves the claim query, and on PostgreSQL a trigger that notifies
// the channel named after the message table of every row that becomes
// visible (insert, or visible set back to true), with the queue id as
// payload: Python producers then wake our consumers too.

// dbInfo is what a connection learnt about the server and the tables.
type dbInfo struct {
	version    string
	mariadb    bool
	skipLocked bool
	// queueID and messageID are the id expressions of an insert, "" when
	// the column fills itself (AUTO_INCREMENT, a default).
	queueID   string
	messageID string
	notify    bool // PostgreSQL: the trigger is in place
	lease     bool // the kombu_go_claimed column is there
}

// leaseColumn is our column: when one of our consumers claimed the row.
const leaseColumn = "kombu_go_claimed"

// ensureLease adds the lease column when it is missing.
func ensureLease(ctx context.Context, tx *sql.Tx, o *Options) error {
	var n int
	q := `SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ?`
	typ := "DATETIME"
	if o.Dialect == PostgreSQL {
		q = `SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2`
		typ = "TIMESTAMP WITHOUT TIME ZONE"
	}
	if err := tx.QueryRowContext(ctx, q, o.MessageTable, leaseColumn).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, "ALTER TABLE "+o.MessageTable+" ADD COLUMN "+leaseColumn+" "+typ+" NULL")
	return err
}

func (o *Options) q(ident string) string {
	if o.Dialect == MySQL {
		return "`" + ident + "`"
	}
	return `"` + ident + `"`
}

// ensureSchema creates Kombu's tables, sequences and indexes when they are
// missing, adds our index (and trigger), and reads how ids are made.
func ensureSchema(ctx context.Context, db *sql.DB, o *Options) (dbInfo, error) {
	var info dbInfo
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&info.version); err != nil {
		return info, fmt.Errorf("server version: %w", err)
	}
	if o.Dialect == PostgreSQL {
		info.skipLocked = pgVersion(info.version) >= 9.5
		return info, ensurePG(ctx, db, o, &info)
	}
	info.mariadb = strings.Contains(strings.ToLower(info.version), "mariadb")
	info.skipLocked = mysqlSkipLocked(info.version, info.mariadb)
	return info, ensureMySQL(ctx, db, o, &info)
}

// pgVersion reads "PostgreSQL 15.20 (...)" as 15.2 (major.minor).
func pgVersion(v string) float64 {
	f := strings.Fields(v)
	if len(f) < 2 {
		return 0
	}
	parts := strings.SplitN(f[1], ".", 3)
	major, _ := strconv.Atoi(parts[0])
	minor := 0
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	if major >= 10 {
		return float64(major)
	}
	return float64(major) + float64(minor)/10
}

// mysqlSkipLocked: MySQL 8.0 and MariaDB 10.6 have SKIP LOCKED.
func mysqlSkipLocked(v string, mariadb bool) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, _ := strconv.Atoi(parts[0])
	minor, _ := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if mariadb {
		return major > 10 || major == 10 && minor >= 6
	}
	return major >= 8
}

func execAll(ctx context.Context, tx *sql.Tx, stmts ...string) error {
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", firstLine(s), err)
		}
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}

func ensurePG(ctx context.Context, db *sql.DB, o *Options, info *dbInfo) error {
	qt, mt := o.QueueTable, o.MessageTable
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// One creator at a time among our processes (Kombu's create_all checks
	// and creates without a lock).
	stmts := []string{
		"SELECT pg_advisory_xact_lock(7283541100)",
		"CREATE SEQUENCE IF NOT EXISTS queue_id_sequence",
		"CREATE SEQUENCE IF NOT EXISTS message_id_sequence",
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	id INTEGER NOT NULL,
	name VARCHAR(200),
	PRIMARY KEY (id),
	UNIQUE (name))`, qt),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	id INTEGER NOT NULL,
	visible BOOLEAN,
	"timestamp" TIMESTAMP WITHOUT TIME ZONE,
	payload TEXT NOT NULL,
	version SMALLINT NOT NULL,
	queue_id INTEGER,
	PRIMARY KEY (id),
	CONSTRAINT "FK_kombu_message_queue" FOREIGN KEY(queue_id) REFERENCES %s (id))`, mt, qt),
		fmt.Sprintf(`CREATE INDEX IF NOT EXISTS ix_%s_visible ON %s (visible)`, mt, mt),
		fmt.Sprintf(`CREATE INDEX IF NOT EXISTS ix_%s_timestamp ON %s ("timestamp")`, mt, mt),
		// The name is Kombu's whatever the table: PostgreSQL index names are
		// per schema, so a second message table gets none (as with Kombu,
		// whose create_all then fails).
		fmt.Sprintf(`CREATE INDEX IF NOT EXISTS ix_kombu_message_timestamp_id ON %s ("timestamp", id)`, mt),
		fmt.Sprintf(`CREATE INDEX IF NOT EXISTS ix_%s_kombu_go ON %s (queue_id, visible, id)`, mt, mt),
	}
	if !o.NoListen {
		stmts = append(stmts,
			fmt.Sprintf(`CREATE OR REPLACE FUNCTION %s_kombu_notify() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	PERFORM pg_notify(TG_TABLE_NAME, NEW.queue_id::text);
	RETURN NULL;
END $f$`, mt),
			fmt.Sprintf(`DO $d$ BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '%[1]s_kombu_notify' AND tgrelid = '%[1]s'::regclass) THEN
		CREATE TRIGGER %[1]s_kombu_notify AFTER INSERT OR UPDATE OF visible ON %[1]s
			FOR EACH ROW WHEN (NEW.visible) EXECUTE PROCEDURE %[1]s_kombu_notify();
	END IF;
END $d$`, mt))
	}
	if err := execAll(ctx, tx, stmts...); err != nil {
		return err
	}
	info.notify = !o.NoListen
	if o.VisibilityTimeout > 0 {
		if err := ensureLease(ctx, tx, o); err != nil {
			return err
		}
		info.lease = true
	}
	var err2 error
	if info.queueID, err2 = pgIDExpr(ctx, tx, qt, "queue_id_sequence"); err2 != nil {
		return err2
	}
	if info.messageID, err2 = pgIDExpr(ctx, tx, mt, "message_id_sequence"); err2 != nil {
		return err2
	}
	return tx.Commit()
}

// pgIDExpr: nextval of Kombu's sequence unless the id column has a default.
func pgIDExpr(ctx context.Context, tx *sql.Tx, table, seq string) (string, error) {
	var def sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT column_default FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 AND column_name = 'id'`, strings.ToLower(table)).Scan(&def)
	if err != nil {
		return "", fmt.Errorf("reading %s.id: %w", table, err)
	}
	if def.Valid && def.String != "" {
		return "", nil
	}
	return "nextval('" + seq + "')", nil
}

func ensureMySQL(ctx context.Context, db *sql.DB, o *Options, info *dbInfo) error {
	qt, mt := o.QueueTable, o.MessageTable
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	idCol := "id INTEGER NOT NULL AUTO_INCREMENT"
	var stmts []string
	if info.mariadb {
		idCol = "id INTEGER NOT NULL"
		stmts = append(stmts,
			"CREATE SEQUENCE IF NOT EXISTS queue_id_sequence",
			"CREATE SEQUENCE IF NOT EXISTS message_id_sequence")
	}
	// InnoDB constraint names are per database: Kombu's name for the
	// default table, a name of the table's own for others.
	fk := "FK_kombu_message_queue"
	if mt != defaultMessageTable {
		fk = "FK_" + mt + "_queue"
	}
	stmts = append(stmts,
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS `%s` (\n\t%s,\n\tname VARCHAR(200),\n\tPRIMARY KEY (id),\n\tUNIQUE (name)) ENGINE=InnoDB", qt, idCol),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS `%s` (\n\t%s,\n\tvisible BOOL,\n\t`timestamp` DATETIME,\n\tpayload TEXT NOT NULL,\n\tversion SMALLINT NOT NULL,\n\tqueue_id INTEGER,\n\tPRIMARY KEY (id),\n\tCONSTRAINT `%s` FOREIGN KEY(queue_id) REFERENCES `%s` (id),\n\tINDEX `ix_%s_visible` (visible),\n\tINDEX `ix_%s_timestamp` (`timestamp`),\n\tINDEX ix_kombu_message_timestamp_id (`timestamp`, id)) ENGINE=InnoDB",
			mt, idCol, fk, qt, mt, mt),
		fmt.Sprintf("CREATE INDEX IF NOT EXISTS `ix_%s_kombu_go` ON `%s` (queue_id, visible, id)", mt, mt))
	if !info.mariadb {
		// MySQL has no CREATE INDEX IF NOT EXISTS.
		stmts = stmts[:len(stmts)-1]
	}
	if err := execAll(ctx, tx, stmts...); err != nil {
		return err
	}
	if !info.mariadb {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.statistics
			WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ?`, mt, "ix_"+mt+"_kombu_go").Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			if err := execAll(ctx, tx, fmt.Sprintf("CREATE INDEX `ix_%s_kombu_go` ON `%s` (queue_id, visible, id)", mt, mt)); err != nil {
				return err
			}
		}
	}
	if o.VisibilityTimeout > 0 {
		if err := ensureLease(ctx, tx, o); err != nil {
			return err
		}
		info.lease = true
	}
	var err2 error
	if info.queueID, err2 = mysqlIDExpr(ctx, tx, qt, "queue_id_sequence"); err2 != nil {
		return err2
	}
	if info.messageID, err2 = mysqlIDExpr(ctx, tx, mt, "message_id_sequence"); err2 != nil {
		return err2
	}
	return tx.Commit()
}

// mysqlIDExpr: nothing for an AUTO_INCREMENT id, else the next value of
// Kombu's sequence (MariaDB).
func mysqlIDExpr(ctx context.Context, tx *sql.Tx, table, seq string) (string, error) {
	var extra string
	err := tx.QueryRowContext(ctx, `SELECT extra FROM information_schema.columns
		WHERE table_schema = DATABASE() AND table_name = ? AND column_name = 'id'`, table).Scan(&extra)
	if err != nil {
		return "", fmt.Errorf("reading %s.id: %w", table, err)
	}
	if strings.Contains(strings.ToLower(extra), "auto_increment") {
		return "", nil
	}
	return "NEXT VALUE FOR " + seq, nil
}
