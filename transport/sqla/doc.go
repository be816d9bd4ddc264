// Package sqla is Kombu's SQLAlchemy transport ("sqla+postgresql://",
// "sqla+mysql://", and the same with "sqlalchemy+"): Kombu's virtual
// channel (package channel) over Kombu's two tables, on PostgreSQL through
// pgx and on MySQL or MariaDB through go-sql-driver/mysql, so that a Python
// Kombu or Celery service on the same database exchanges messages with a
// Go service both ways.
//
// # Tables
//
// The tables are Kombu 5.2.4's (kombu/transport/sqlalchemy/models.py):
// kombu_queue (id, name) and kombu_message (id, visible, timestamp,
// payload, version, queue_id), named by the queue_tablename and
// message_tablename options, with ids from the sequences
// queue_id_sequence and message_id_sequence on PostgreSQL and MariaDB
// (AUTO_INCREMENT on MySQL), as SQLAlchemy's metadata.create_all makes
// them; Dial creates whatever is missing (see schema.go for the exact
// layout) and uses tables that Python Kombu created as they are. The
// payload is Kombu's JSON envelope (package channel/envelope).
//
// # How messages move
//
//   - Publish inserts a row (visible, version 1, no timestamp), as Kombu's
//     _put does. Bindings and exchanges are process-local (Kombu's virtual
//     BrokerState); fanout stores a copy in each queue bound in this
//     process (Kombu's SQLAlchemy transport has no fanout).
//   - A claim takes up to the prefetch room's worth of visible rows, oldest
//     id first, with SELECT ... FOR UPDATE SKIP LOCKED (PostgreSQL 9.5+,
//     MySQL 8, MariaDB 10.6+; plain FOR UPDATE before) and marks them
//     visible=false with a timestamp and version+1, as Kombu's _get does
//     one row at a time. On PostgreSQL it is one UPDATE ... RETURNING.
//   - Ack (and reject without requeue) DELETEs the row. Kombu deletes
//     nothing: its acknowledged rows stay in the table, invisible, for
//     ever. A requeue moves the row to the back of its queue (deleted and
//     inserted again in one transaction); a restore (channel close,
//     Recover) makes it visible where it was. Both mark the payload
//     redelivered.
//   - Size counts visible rows; Purge and DeleteQueue delete visible rows
//     (DeleteQueue is Kombu's: a purge; the queue row stays, as another
//     process may hold its id).
//
// # Waking consumers
//
// On PostgreSQL, Dial installs a trigger on the message table that runs
// pg_notify(<message table>, queue_id) for every row that becomes visible
// (an insert, or visible set back to true), so Python producers wake Go
// consumers too. A connection holds one LISTEN connection, started by its
// first consumer; a notification wakes the channels consuming that queue.
// While the LISTEN connection is up an idle consumer still polls every
// listen_polling_interval (10s) as a safety net; while it is down, and
// always on MySQL, consumers poll every polling_interval (Kombu's, 1s).
// Publishers of the same process wake local consumers directly.
//
// # Failures
//
// A consumer that dies while it holds messages leaves their rows
// invisible. Kombu never restores such rows. Here every claim also writes
// the claim time in a column of ours, kombu_go_claimed, added to the
// message table at Dial (NULL in Python's rows), and a sweep makes rows
// that our consumers claimed more than visibility_timeout ago (default 1h)
// visible again, marked redelivered; Python's acknowledged rows are never
// restored, because their column is NULL. The sweep piggybacks on claims
// (at most every quarter of the timeout, 1s to 1min). A message whose
// handler runs longer than the timeout can be delivered twice, as on Redis
// and SQS. visibility_timeout=0 turns the sweep off and leaves the table
// unaltered. A lost connection makes claims retry every polling_interval
// (with backoff) and settlements retry until they succeed or
// ConnectTimeout+30s passes; database/sql redials, and the LISTEN
// goroutine reconnects with backoff and then wakes every consumer.
//
// # Concurrency
//
// Every connection ([Conn]) has a database/sql pool, one executor
// goroutine that runs the consumers' claims and settlements (database
// calls block, so the hub never makes one) and posts the results to the
// hub, and on PostgreSQL one LISTEN goroutine: pgx's WaitForNotification
// blocks, and taking its socket into the hub would mean parsing the
// PostgreSQL protocol ourselves, which pgx does not expose for a
// non-blocking reader; one goroutine per connection, whatever the number of
// queues, costs less than that code. Nothing is per queue. Requests
// (publish, declarations, Get, Size, Purge) run on the caller's goroutine
// through the pool, as the channel.Store contract allows. Idle polling runs
// on hub timers. Close joins every goroutine the connection started.
//
// # Errors
//
// Errors of an unreachable database or a broken connection are
// transport.BrokerError with Kind transport.KindConnection; others wrap
// the driver's error. A payload that is not a Kombu envelope is delivered
// with Err set (wrapping transport.ErrBadEnvelope) and its raw bytes as
// Body, never dropped. Options are read with internal/optmap: an unknown
// option is a *transport.OptionError.
package sqla
