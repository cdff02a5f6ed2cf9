/* pool.c: a fixed set of worker threads that run one kernel at a time.
 *
 * rt_pool_run splits [0, ntask) into at most one contiguous range per thread
 * (k = min(threads, ntask) ranges; range i is [q*i + min(i, r), ...) with
 * q = ntask / k, r = ntask % k, the first r ranges one task longer); the
 * calling thread runs range 0 itself, worker i runs range i. Which thread
 * runs which range is fixed, so a kernel that obeys the contract (tasks
 * write disjoint outputs, a task's result does not depend on the grouping)
 * gives bitwise-identical results for any thread count.
 *
 * Hand-off: the caller writes the job, then bumps the generation counter
 * (release) under the mutex and broadcasts if any worker sleeps. Workers
 * spin briefly on the counter after a job, because kernels of one step
 * follow each other closely, then park on the condition variable. Every
 * worker acknowledges every generation (those without a range just count
 * down), so the job fields never change while a worker may read them. The
 * caller spins briefly on the pending count, then sleeps on `done`; the
 * last worker to finish signals it. Nothing is allocated per call.
 *
 * One thread at a time may call rt_pool_run on a given pool (a second
 * caller waits on run_mu); a kernel must not call back into its own pool. */
#include "rt.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

/* Spin iterations before sleeping (POOL_PAUSES pauses, then yields): tens
 * of microseconds, enough to catch the next kernel of a step. */
enum { POOL_MAX_THREADS = 256, POOL_PAUSES = 64, POOL_SPIN = 256 };

typedef struct Worker {
	rt_Pool *pool;
	int index;
	pthread_t thread;
} Worker;

struct rt_Pool {
	int n;                  /* threads including the caller */
	int nstarted;           /* workers actually running */
	Worker *worker;         /* indices 1 .. n-1 are workers */
	pthread_mutex_t run_mu; /* one caller at a time */
	pthread_mutex_t mu;     /* sleeping and waking */
	pthread_cond_t wake, done;
	int nsleep;             /* workers parked on wake (mu) */
	int caller_waits;       /* caller parked on done (mu) */
	_Atomic uint64_t gen;
	_Atomic int pending;
	_Atomic int stop;
	/* the current job, stable while pending > 0 */
	rt_KernelFn fn;
	void *const *buf;
	int64_t ntask;
	int nrange;
};

/* The first spins are pauses; later ones yield, so on an oversubscribed
 * machine a spinning thread gives its core to whoever has work. */
static inline void relax(int i)
{
	if (i >= POOL_PAUSES) {
		sched_yield();
		return;
	}
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static void range_of(int64_t ntask, int nrange, int i, int64_t *lo, int64_t *hi)
{
	int64_t q = ntask / nrange, r = ntask % nrange;
	*lo = q * i + (i < r ? i : r);
	*hi = *lo + q + (i < r);
}

static uint64_t wait_job(rt_Pool *p, uint64_t seen)
{
	uint64_t g;
	for (int i = 0; i < POOL_SPIN; i++) {
		if ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) != seen)
			return g;
		relax(i);
	}
	pthread_mutex_lock(&p->mu);
	while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen) {
		p->nsleep++;
		pthread_cond_wait(&p->wake, &p->mu);
		p->nsleep--;
	}
	pthread_mutex_unlock(&p->mu);
	return g;
}

static void *worker_main(void *arg)
{
	Worker *w = arg;
	rt_Pool *p = w->pool;
	uint64_t seen = 0;
	for (;;) {
		seen = wait_job(p, seen);
		if (atomic_load(&p->stop))
			break;
		if (w->index < p->nrange) {
			int64_t lo, hi;
			range_of(p->ntask, p->nrange, w->index, &lo, &hi);
			p->fn(p->buf, lo, hi);
		}
		if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
			pthread_mutex_lock(&p->mu);
			if (p->caller_waits)
				pthread_cond_signal(&p->done);
			pthread_mutex_unlock(&p->mu);
		}
	}
	return NULL;
}

/* Publish a new generation; wakes parked workers. */
static void publish(rt_Pool *p)
{
	pthread_mutex_lock(&p->mu);
	atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
	if (p->nsleep)
		pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
}

static int online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > POOL_MAX_THREADS ? POOL_MAX_THREADS : (int)n;
}

rt_Pool *rt_pool_create(int nthreads)
{
	if (nthreads <= 0)
		nthreads = online_cpus();
	if (nthreads > POOL_MAX_THREADS)
		nthreads = POOL_MAX_THREADS;
	rt_Pool *p = mem_calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->n = nthreads;
	p->worker = mem_calloc((size_t)nthreads, sizeof *p->worker);
	if (!p->worker) {
		mem_free(p);
		return NULL;
	}
	pthread_mutex_init(&p->run_mu, NULL);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->done, NULL);
	for (int i = 1; i < nthreads; i++) {
		Worker *w = &p->worker[i];
		w->pool = p;
		w->index = i;
		if (pthread_create(&w->thread, NULL, worker_main, w)) {
			rt_pool_destroy(p);
			return NULL;
		}
		p->nstarted = i;
	}
	return p;
}

void rt_pool_destroy(rt_Pool *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, 1);
	publish(p);
	for (int i = 1; i <= p->nstarted; i++)
		pthread_join(p->worker[i].thread, NULL);
	pthread_cond_destroy(&p->done);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->run_mu);
	mem_free(p->worker);
	mem_free(p);
}

int rt_pool_size(const rt_Pool *p)
{
	return p ? p->n : 1;
}

void rt_pool_run(rt_Pool *p, rt_KernelFn fn, void *const *buf, int64_t ntask)
{
	if (ntask <= 0)
		return;
	if (!p || p->n == 1 || ntask == 1) {
		fn(buf, 0, ntask);
		return;
	}
	pthread_mutex_lock(&p->run_mu);
	p->fn = fn;
	p->buf = buf;
	p->ntask = ntask;
	p->nrange = ntask < p->n ? (int)ntask : p->n;
	atomic_store_explicit(&p->pending, p->nstarted, memory_order_relaxed);
	publish(p);

	int64_t lo, hi;
	range_of(ntask, p->nrange, 0, &lo, &hi);
	fn(buf, lo, hi);

	for (int i = 0; i < POOL_SPIN; i++) {
		if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
			goto done;
		relax(i);
	}
	pthread_mutex_lock(&p->mu);
	p->caller_waits = 1;
	while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
		pthread_cond_wait(&p->done, &p->mu);
	p->caller_waits = 0;
	pthread_mutex_unlock(&p->mu);
done:
	pthread_mutex_unlock(&p->run_mu);
}
