// Package celery lets a Go program take part in a Celery deployment: send
// tasks to Celery workers and read their results ([Client], [AsyncResult]),
// and run tasks that Celery clients send on a Go worker ([Worker]) that
// Celery's own tools see (events on celeryev, remote control over the
// pidbox). It speaks Celery 5's wire formats over this module's messaging
// package, so the broker may be Redis or RabbitMQ (or the in-process memory
// transport, for tests).
//
// Celery to Go:
//
//	Celery                                     Go
//	app.send_task(name, args, kwargs)          client.SendTask(ctx, name, args, kwargs)
//	task.apply_async(args, kwargs, countdown=, client.ApplyAsync(ctx, name, CallOptions{Args, Kwargs,
//	  eta=, expires=, queue=, priority=, ...)    Countdown, ETA, Expires, Queue, Priority, ...})
//	task_routes (dict or function)             ClientOptions.Routes: RouteMap(map) or a Router func
//	task_serializer, task_compression          ClientOptions.Serializer, Compression
//	result_backend = 'redis://' / 'rpc://'     ClientOptions.Backend, WorkerOptions.Backend
//	result_expires                             BackendOptions.Expires
//	AsyncResult.get(timeout=)                  r.Get(ctx) (a *TaskError for FAILURE/REVOKED)
//	AsyncResult.state / ready() / forget()     r.State(ctx) / r.Ready(ctx) / r.Forget(ctx)
//	@app.task(name=, max_retries=, acks_late=, worker.Register(name, handler, TaskOptions{MaxRetries,
//	  time_limit=, soft_time_limit=)             AcksLate, TimeLimit, SoftTimeLimit})
//	self.retry(countdown=, exc=)               return nil, celery.RetryAfter(countdown, err)
//	raise Reject(requeue=)                     return nil, &celery.RejectError{Requeue: true}
//	raise SomeError(msg)                       return nil, err (or a *TaskError with Type/Module)
//	self.request                               celery.TaskFromContext(ctx)
//	celery worker -Q q -c N -E                 NewWorker(WorkerOptions{Queues, Concurrency, SendEvents,
//	                                             RemoteControl}).Run(ctx)
//	celery amqp queue.delete q                 DeleteQueue(ctx, conn, "q")
//
// # Wire format
//
// Tasks are sent as Celery's protocol 2: the task name, id, eta, expires,
// retries, timelimit, root_id, parent_id ... in the message headers, the
// body the JSON (or msgpack, yaml) list [args, kwargs, embed], the
// correlation_id the task id and reply_to the RPC backend's reply queue. A
// route to a direct exchange is published, as Celery does, to the default
// exchange with the queue's name as routing key, after declaring the queue
// (durable, bound to a direct exchange of its name). The worker also reads
// protocol 1 (the task dict as the body), which older clients send.
//
// Results follow Celery's backends. Redis: the JSON meta {status, result,
// traceback, children, date_done, task_id} at celery-task-meta-<id>, set
// with SETEX result_expires and PUBLISHed on the channel of the same name,
// to which a waiting client subscribes. RPC: the meta is a message to the
// client's reply queue (reply_to, correlation_id = task id). A failure's
// result is Celery's exception dict {exc_type, exc_module, exc_message}, so
// Python's AsyncResult.get raises the exception, and the Go side reads it
// back into a [*TaskError].
//
// # The worker
//
// Messages arrive on the hub of the worker's connection (a
// messaging.ConsumerWorker, which reconnects). The hub callback decodes the
// request and hands it to a bounded pool of Concurrency goroutines
// (messaging.Workers); the prefetch count is Concurrency ×
// PrefetchMultiplier. By default a task's message is acknowledged just
// before the handler runs; with AcksLate after it ran. A task with an ETA
// in the future waits on a hub timer, not in the pool, and raises the
// prefetch count by one while it waits (Celery's QoS increment), so it
// does not hold back the tasks behind it. An expired task is stored as
// REVOKED and not run. A RetryError sends the task again with retries+1
// and its countdown, and stores RETRY. The soft time limit is the
// handler's context deadline (an error caused by it is stored as
// SoftTimeLimitExceeded); at the hard limit the task is stored as failed
// with TimeLimitExceeded and its context cancelled, but Go cannot stop a
// goroutine: the handler keeps its goroutine until it returns, and Run
// waits for it. A handler's panic is recovered and stored as a failure
// with the stack as traceback.
//
// Run ends gracefully when its context ends (SIGTERM) or on remote control
// shutdown: consuming stops, the running and queued tasks finish within
// DrainTimeout, ETA tasks not yet due go back to the broker, and
// worker-offline is sent.
//
// # Concurrency
//
// Client, AsyncResult, the backends and Worker's methods are safe for
// concurrent use. Handlers run on the pool's goroutines and may block.
// Goroutines, each joined by the Close or Run that owns it: the RPC
// backend's hub runner (client side, from the first task sent to Close);
// the worker's pool, its prefetch updater, heartbeat sender and remote
// control loop (all joined by Run); a handler past its hard time limit
// (joined by Run).
//
// # Errors
//
//   - [ErrMalformed]: a message that is not a Celery task (missing task
//     name or id, a body that is not [args, kwargs, embed] or a task dict).
//     It goes to WorkerOptions.OnDecodeError, by default logged, counted
//     (Worker.DecodeErrors) and rejected: never dropped silently. Messages
//     that cannot be decoded at all (bad envelope, refused content type)
//     take the same path with messaging's *DecodeError.
//   - [*TaskError] (errors.Is [ErrTaskFailed]): AsyncResult.Get of a task
//     that failed or was revoked, with the exception type, message and
//     traceback stored by the worker, Go or Python.
//   - [ErrNoBackend], [ErrClosed], [ErrMaxRetries]. A task name the worker does not know is
//     logged and its message rejected, as Celery does.
//   - Broker and backend errors are returned wrapped (%w).
package celery
