package sqla

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// db is the SQL half of a connection: the database/sql pool, the dialect's
// statements, and a cache of queue ids (queue rows are never deleted, by
// Kombu or by us, so an id once read stays right).
type db struct {
	o    *Options
	pool *sql.DB
	info dbInfo

	// statements, with ? placeholders rewritten to $n on PostgreSQL.
	selQueue, insQueue, insMsg, claimPG, claimSel, claimSet, size, purge, del1, restore, list string
	expired, reclaim                                                                          string

	mu  sync.Mutex
	ids map[string]int64 // queue name -> id
}

// row is a claimed message row.
type row struct {
	id      int64
	qid     int64
	payload []byte
}

func newDB(pool *sql.DB, o *Options, info dbInfo) *db {
	d := &db{o: o, pool: pool, info: info, ids: make(map[string]int64)}
	qt, mt := o.QueueTable, o.MessageTable
	ts := o.q("timestamp")
	now := "LOCALTIMESTAMP"
	if o.Dialect == MySQL {
		now = "NOW()"
	}
	d.selQueue = d.bind("SELECT id FROM " + qt + " WHERE name = ?")
	if o.Dialect == PostgreSQL {
		d.insQueue = d.bind("INSERT INTO " + qt + " (" + idCol(info.queueID) + "name) VALUES (" + idVal(info.queueID) + "?) ON CONFLICT (name) DO NOTHING")
	} else {
		// Not INSERT IGNORE, which would also hide a name too long for
		// the column.
		d.insQueue = "INSERT INTO " + qt + " (" + idCol(info.queueID) + "name) VALUES (" + idVal(info.queueID) + "?) ON DUPLICATE KEY UPDATE name = name"
	}
	// As SQLAlchemy inserts: visible true, version 1, no timestamp.
	d.insMsg = d.bind("INSERT INTO " + mt + " (" + idCol(info.messageID) + "visible, payload, version, queue_id) VALUES (" +
		idVal(info.messageID) + "TRUE, ?, 1, ?)")
	lock := " FOR UPDATE"
	if info.skipLocked {
		lock += " SKIP LOCKED"
	}
	// Kombu's claim is SELECT ... WHERE visible != false ORDER BY timestamp,
	// id LIMIT 1 FOR UPDATE, then visible=false (and SQLAlchemy's onupdate
	// timestamp and version+1). Ours takes up to n rows, skips rows another
	// consumer holds, and orders by id alone: rows ready for delivery have
	// a NULL timestamp (set only by updates, and reset by our restores).
	where := " FROM " + mt + " WHERE queue_id = ? AND visible = TRUE ORDER BY id LIMIT ?" + lock
	d.claimSel = d.bind("SELECT id, payload" + where)
	d.claimSet = "visible = FALSE, " + ts + " = " + now + ", version = version + 1"
	unlease := ""
	if info.lease {
		d.claimSet += ", " + leaseColumn + " = " + now
		unlease = ", " + leaseColumn + " = NULL"
	}
	d.claimPG = d.bind("UPDATE " + mt + " SET " + d.claimSet + " WHERE id IN (SELECT id" + where + ") RETURNING id, payload")
	// The visibility sweep: rows our consumers claimed too long ago.
	d.expired = "SELECT id, payload FROM " + mt + " WHERE visible = FALSE AND " + leaseColumn + " < " + now + " - "
	if o.Dialect == PostgreSQL {
		d.expired += "make_interval(secs => $1)"
	} else {
		d.expired += "INTERVAL ? SECOND"
	}
	d.expired += " ORDER BY id LIMIT 500" + lock
	d.size = d.bind("SELECT COUNT(*) FROM " + mt + " WHERE queue_id = ? AND visible = TRUE")
	d.purge = d.bind("DELETE FROM " + mt + " WHERE queue_id = ? AND visible = TRUE")
	d.del1 = d.bind("DELETE FROM " + mt + " WHERE id = ?")
	d.restore = d.bind("UPDATE " + mt + " SET visible = TRUE, " + ts + " = NULL" + unlease + ", payload = ?, version = version + 1 WHERE id = ? AND visible = FALSE")
	d.list = "SELECT q.name, COALESCE(SUM(CASE WHEN m.visible = TRUE THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN m.visible = FALSE THEN 1 ELSE 0 END), 0) FROM " +
		qt + " q LEFT JOIN " + mt + " m ON m.queue_id = q.id GROUP BY q.name ORDER BY q.name"
	return d
}

func idCol(expr string) string {
	if expr == "" {
		return ""
	}
	return "id, "
}

func idVal(expr string) string {
	if expr == "" {
		return ""
	}
	return expr + ", "
}

// bind rewrites ? placeholders to $1, $2, ... on PostgreSQL. The statements
// are ours and hold no '?' in literals.
func (d *db) bind(s string) string {
	if d.o.Dialect != PostgreSQL {
		return s
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// inList returns "(?, ?, ...)" bound for n values starting at placeholder
// number from (1-based, PostgreSQL).
func (d *db) inList(n, from int) string {
	var b strings.Builder
	b.WriteByte('(')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		if d.o.Dialect == PostgreSQL {
			b.WriteString("$" + strconv.Itoa(from+i))
		} else {
			b.WriteByte('?')
		}
	}
	b.WriteByte(')')
	return b.String()
}

// errNoQueue: the queue has no row.
var errNoQueue = errors.New("sqla: no such queue")

// queueID returns the id of the named queue, creating its row when create
// is set (Kombu's _get_or_create); errNoQueue when it has none.
func (d *db) queueID(ctx context.Context, name string, create bool) (int64, error) {
	d.mu.Lock()
	id, ok := d.ids[name]
	d.mu.Unlock()
	if ok {
		return id, nil
	}
	err := d.pool.QueryRowContext(ctx, d.selQueue, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) && create {
		if _, err = d.pool.ExecContext(ctx, d.insQueue, name); err != nil {
			return 0, err
		}
		err = d.pool.QueryRowContext(ctx, d.selQueue, name).Scan(&id)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return 0, errNoQueue
	}
	if err != nil {
		return 0, err
	}
	d.mu.Lock()
	d.ids[name] = id
	d.mu.Unlock()
	return id, nil
}

// forget drops a cached id (after a foreign-key failure: someone deleted
// the queue row).
func (d *db) forget(name string) {
	d.mu.Lock()
	delete(d.ids, name)
	d.mu.Unlock()
}

func (d *db) put(ctx context.Context, qid int64, payload []byte) error {
	_, err := d.pool.ExecContext(ctx, d.insMsg, string(payload), qid)
	return err
}

// claim marks up to n visible rows of a queue invisible and returns them,
// oldest first.
func (d *db) claim(ctx context.Context, qid int64, n int) ([]row, error) {
	if d.o.Dialect == PostgreSQL {
		rows, err := d.pool.QueryContext(ctx, d.claimPG, qid, n)
		if err != nil {
			return nil, err
		}
		out, err := scanRows(rows, qid)
		sortRows(out)
		return out, err
	}
	tx, err := d.pool.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, d.claimSel, qid, n)
	if err != nil {
		return nil, err
	}
	out, err := scanRows(rows, qid)
	if err != nil || len(out) == 0 {
		return nil, err
	}
	args := make([]any, len(out))
	for i, r := range out {
		args[i] = r.id
	}
	upd := "UPDATE " + d.o.MessageTable + " SET " + d.claimSet + " WHERE id IN " + d.inList(len(out), 1)
	if _, err := tx.ExecContext(ctx, upd, args...); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return out, nil
}

func scanRows(rows *sql.Rows, qid int64) ([]row, error) {
	defer rows.Close()
	var out []row
	for rows.Next() {
		r := row{qid: qid}
		var p sql.RawBytes
		if err := rows.Scan(&r.id, &p); err != nil {
			return out, err
		}
		r.payload = append([]byte(nil), p...)
		out = append(out, r)
	}
	return out, rows.Err()
}

func sortRows(rs []row) {
	// insertion sort: n is a prefetch window
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].id < rs[j-1].id; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// sweep makes visible again, marked redelivered, the rows our consumers
// claimed longer than timeout ago (a consumer that died, or lost the
// reply of its claim), and returns how many.
func (d *db) sweep(ctx context.Context, timeout float64) (int, error) {
	if !d.info.lease {
		return 0, nil
	}
	tx, err := d.pool.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, d.expired, timeout)
	if err != nil {
		return 0, err
	}
	out, err := scanRows(rows, 0)
	if err != nil || len(out) == 0 {
		return 0, err
	}
	for _, r := range out {
		if _, err := tx.ExecContext(ctx, d.restore, string(redelivered(r.payload)), r.id); err != nil {
			return 0, err
		}
	}
	return len(out), tx.Commit()
}

// deleteIDs deletes rows (ack, reject without requeue, no-ack delivery).
func (d *db) deleteIDs(ctx context.Context, ids []int64) error {
	for len(ids) > 0 {
		n := min(len(ids), 500)
		args := make([]any, n)
		for i := range n {
			args[i] = ids[i]
		}
		if _, err := d.pool.ExecContext(ctx, "DELETE FROM "+d.o.MessageTable+" WHERE id IN "+d.inList(n, 1), args...); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// restoreRow makes a claimed row visible again where it was (consumed
// next), with its payload marked redelivered. Returns false when the row
// is gone or already visible.
func (d *db) restoreRow(ctx context.Context, r row) (bool, error) {
	res, err := d.pool.ExecContext(ctx, d.restore, string(r.payload), r.id)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// requeueRow moves a claimed row to the back of its queue: deleted and
// inserted again with a new id, in one transaction (Kombu's reject with
// requeue puts a new row, leaving the old one invisible).
func (d *db) requeueRow(ctx context.Context, r row) error {
	tx, err := d.pool.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, d.del1, r.id); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, d.insMsg, string(r.payload), r.qid); err != nil {
		return err
	}
	return tx.Commit()
}

func (d *db) count(ctx context.Context, q string, qid int64) (int, error) {
	var n int
	err := d.pool.QueryRowContext(ctx, q, qid).Scan(&n)
	return n, err
}

func (d *db) purgeQueue(ctx context.Context, qid int64) (int, error) {
	res, err := d.pool.ExecContext(ctx, d.purge, qid)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// QueueStat is one queue of [Transport.Queues].
type QueueStat struct {
	Name string
	// Ready counts the visible rows; Invisible the rows claimed by a
	// consumer: ours in flight, or Python Kombu's (in flight or acked:
	// Kombu never deletes a row).
	Ready, Invisible int
}

func (d *db) queues(ctx context.Context) ([]QueueStat, error) {
	rows, err := d.pool.QueryContext(ctx, d.list)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []QueueStat
	for rows.Next() {
		var s QueueStat
		var name sql.NullString
		if err := rows.Scan(&name, &s.Ready, &s.Invisible); err != nil {
			return nil, err
		}
		s.Name = name.String
		out = append(out, s)
	}
	return out, rows.Err()
}

func (d *db) String() string { return fmt.Sprintf("%s %s", d.o.Dialect, d.info.version) }
