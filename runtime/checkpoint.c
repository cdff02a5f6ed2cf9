/* checkpoint.c: training checkpoints that survive a crash at any moment.
 *
 * Layout of a run folder:
 *   ckpt-<step>/model.safetensors   the parameters under their model names
 *   ckpt-<step>/optim.safetensors   AdamW moments, "<param>.exp_avg(_sq)"
 *   ckpt-<step>/state.json          the trainer's object + "step" + "files"
 *   last.safetensors                the newest model file (hard link or copy)
 *   LATEST                          "ckpt-<step>\n"
 *
 * Saving writes everything into .ckpt-tmp-<pid>/ (each file through
 * rt_AtomicFile: fsync'd, renamed, folder fsync'd), then renames that folder
 * to ckpt-<step> and fsyncs the run folder. That rename is the commit: a
 * SIGKILL before it leaves only a temporary folder that loading ignores and
 * the next save removes; after it the checkpoint is whole. Only then are
 * last.safetensors and LATEST replaced (each atomically) and old folders
 * pruned. Pruning renames a folder to .ckpt-del-<step>-<pid> before emptying
 * it, so a half-deleted checkpoint never carries a checkpoint's name.
 * Saving a step that already has a folder swaps the two atomically
 * (renameat2 RENAME_EXCHANGE), so the name is never missing.
 *
 * Loading never trusts LATEST (it may lag behind a commit): it tries the
 * ckpt-<step> folders from the highest step down and returns the first
 * whose state.json parses, whose files have the recorded sizes and xxh3-128
 * checksums, and whose tensor files parse. Skipped ones are described in
 * rt_Checkpoint.warning. Loading changes nothing on disk.
 *
 * One writer per run folder: rt_run_lock takes an flock on run/.lock that
 * the kernel drops when the writer dies, so a second trainer is refused
 * instead of interleaving its rows and checkpoints with the first's.
 * Leftovers of dead writers (found by the pid in their name) are removed
 * when a save starts. */
#include "rt.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { MAX_STATE = 16 << 20 };

static const char *const file_name[2] = {"model.safetensors", "optim.safetensors"};

/* cJSON reports failure as NULL for bad text and for no memory alike; the
 * hook tells the two apart. */
static int json_oom;

static void *json_alloc(size_t n)
{
	void *p = mem_alloc(n);
	json_oom |= !p;
	return p;
}

static cJSON *parse_json(const char *text)
{
	static cJSON_Hooks hooks = {json_alloc, mem_free};
	cJSON_InitHooks(&hooks);
	json_oom = 0;
	return cJSON_Parse(text);
}

static int path_of(char *out, const char *dir, const char *name, Diag *d)
{
	if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
		return rt_file_error(d, dir, "path too long");
	return 0;
}

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

/* Remove a folder of plain files (all a checkpoint folder ever holds). */
static int remove_dir(const char *dir)
{
	DIR *dp = opendir(dir);
	if (!dp)
		return errno == ENOENT ? 0 : -1;
	char p[PATH_MAX];
	struct dirent *e;
	while ((e = readdir(dp)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p)
			unlink(p);
	closedir(dp);
	return rmdir(dir);
}

/* "ckpt-<step>" in canonical form (no sign, no leading zeros); -1 otherwise. */
static int64_t ckpt_step(const char *name)
{
	if (strncmp(name, "ckpt-", 5) || !name[5])
		return -1;
	int64_t v = 0;
	for (const char *p = name + 5; *p; p++) {
		if (*p < '0' || *p > '9' || (p == name + 5 && *p == '0' && p[1]) ||
		    v > (INT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v;
}

/* --- checksums --- */

/* The file's size and xxh3-128, read through a private mapping so a large
 * model is not copied; if data is non-NULL the mapping is handed to the
 * caller (unmap with munmap(*data, *size)). */
static int map_file(const char *path, void **data, uint64_t *size, Hash128 *h, Diag *d)
{
	const char *why;
	int fd = file_open_regular(path, &why);
	if (fd < 0)
		return rt_file_error(d, path, "cannot read: %s", why);
	struct stat st;
	if (fstat(fd, &st)) {
		close(fd);
		return rt_file_error(d, path, "cannot read: %s", strerror(errno));
	}
	*size = (uint64_t)st.st_size;
	void *p = NULL;
	if (*size) {
		p = mmap(NULL, (size_t)*size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			close(fd);
			return rt_file_error(d, path, "cannot map: %s", strerror(errno));
		}
	}
	close(fd);
	*h = hash128(p ? p : "", (size_t)*size);
	if (data)
		*data = p;
	else if (p)
		munmap(p, (size_t)*size);
	return 0;
}

/* --- saving --- */

static int pid_dead(const char *digits)
{
	char *end;
	long pid = strtol(digits, &end, 10);
	if (*end || end == digits || pid <= 0)
		return 0;
	return pid == (long)getpid() || (kill((pid_t)pid, 0) && errno == ESRCH);
}

/* Leftovers of writers that are gone: temporary and doomed folders, and the
 * temporaries of last.safetensors and LATEST. */
static void clean_stale(const char *run)
{
	DIR *dp = opendir(run);
	if (!dp)
		return;
	char p[PATH_MAX];
	struct dirent *e;
	while ((e = readdir(dp))) {
		const char *n = e->d_name, *dash = strrchr(n, '-'), *dot = strrchr(n, '.');
		int dir = !strncmp(n, ".ckpt-", 6) && dash && pid_dead(dash + 1);
		int file = (!strncmp(n, "last.safetensors.tmp.", 21) ||
			    !strncmp(n, "LATEST.tmp.", 11)) && pid_dead(dot + 1);
		if ((dir || file) && snprintf(p, sizeof p, "%s/%s", run, n) < (int)sizeof p) {
			if (dir)
				remove_dir(p);
			else
				unlink(p);
		}
	}
	closedir(dp);
}

/* The caller's object plus "step" and "files". */
static char *state_text(const char *json, int64_t step, const uint64_t size[2],
			const Hash128 h[2], const char *run, Diag *d)
{
	cJSON *root = parse_json(json ? json : "{}");
	char *text = NULL;
	if (!root && json_oom)
		goto oom;
	if (!cJSON_IsObject(root)) {
		rt_file_error(d, run, "checkpoint state must be a JSON object");
		goto done;
	}
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "step");
	if (cJSON_GetObjectItemCaseSensitive(root, "files") ||
	    (s && (!cJSON_IsNumber(s) || s->valuedouble != (double)step))) {
		rt_file_error(d, run, "checkpoint state: \"files\" is reserved and \"step\", if "
			      "present, must be %lld", (long long)step);
		goto done;
	}
	if (!s && !cJSON_AddNumberToObject(root, "step", (double)step))
		goto oom;
	cJSON *files = cJSON_AddObjectToObject(root, "files");
	for (int i = 0; files && i < 2; i++) {
		char hex[33];
		hash128_hex(h[i], hex);
		cJSON *f = cJSON_AddObjectToObject(files, file_name[i]);
		if (!f || !cJSON_AddNumberToObject(f, "bytes", (double)size[i]) ||
		    !cJSON_AddStringToObject(f, "xxh3_128", hex))
			goto oom;
	}
	if (!files || !(text = cJSON_Print(root)))
		goto oom;
	goto done;
oom:
	rt_file_error(d, run, "out of memory");
done:
	cJSON_Delete(root);
	return text;
}

static int write_text(const char *path, const char *text, Diag *d)
{
	rt_AtomicFile a;
	if (rt_atomic_begin(&a, path, d))
		return -1;
	if (rt_atomic_write(&a, text, strlen(text), d) || rt_atomic_write(&a, "\n", 1, d)) {
		rt_atomic_abort(&a);
		return -1;
	}
	return rt_atomic_commit(&a, d);
}

/* The model file's metadata. When the trainer's state names the sequence
 * length it trained at, that goes in too ("mswc.train_seq"), so `mswc
 * generate` can keep to the positions the model has learnt from the weights
 * file alone. */
static void model_metadata(char *meta, size_t n, int64_t step, const char *state_json)
{
	long long seq = 0;
	cJSON *j = state_json ? parse_json(state_json) : NULL;
	const cJSON *s = j ? cJSON_GetObjectItemCaseSensitive(j, "seq") : NULL;
	if (cJSON_IsNumber(s) && s->valuedouble >= 1 && s->valuedouble < 1e15)
		seq = (long long)s->valuedouble;
	cJSON_Delete(j);
	if (seq)
		snprintf(meta, n, "{\"format\":\"pt\",\"step\":\"%lld\",\"mswc.train_seq\":\"%lld\"}",
			 (long long)step, seq);
	else
		snprintf(meta, n, "{\"format\":\"pt\",\"step\":\"%lld\"}", (long long)step);
}

/* Tensor files, then state.json, into the temporary folder `tmp`. */
static int write_files(const char *tmp, int64_t step, const rt_NamedTensor *model, int nmodel,
		       const rt_NamedTensor *optim, int noptim, const char *state_json,
		       Diag *d)
{
	char p[PATH_MAX], meta[160];
	uint64_t size[2];
	Hash128 h[2];
	model_metadata(meta, sizeof meta, step, state_json);
	for (int i = 0; i < 2; i++) {
		if (path_of(p, tmp, file_name[i], d) ||
		    rt_safetensors_write(p, i ? optim : model, i ? noptim : nmodel, meta, d) ||
		    map_file(p, NULL, &size[i], &h[i], d))
			return -1;
	}
	char *text = state_text(state_json, step, size, h, tmp, d);
	if (!text)
		return -1;
	int rc = path_of(p, tmp, "state.json", d) || write_text(p, text, d);
	mem_free(text);
	return rc ? -1 : 0;
}

/* Where the file system cannot swap: the old folder leaves first, so for a
 * moment the step has no folder (older checkpoints still stand). */
static int move_aside(const char *run, const char *final, const char *tmp, Diag *d)
{
	char old[PATH_MAX];
	const char *step = strrchr(final, '-') + 1;
	if (snprintf(old, sizeof old, "%s/.ckpt-del-%s-%ld", run, step, (long)getpid()) >=
	    (int)sizeof old)
		return rt_file_error(d, run, "path too long");
	if (rename(final, old) || rename(tmp, final))
		return rt_file_error(d, final, "cannot replace with %s: %s", tmp,
				     strerror(errno));
	remove_dir(old);
	return 0;
}

/* Rename the finished folder into place; an existing one for the same step
 * is swapped out atomically and then removed. */
static int commit(const char *run, const char *tmp, const char *final, Diag *d)
{
	if (rename(tmp, final)) {
		if (errno != EEXIST && errno != ENOTEMPTY)
			return rt_file_error(d, final, "cannot rename %s into place: %s", tmp,
					     strerror(errno));
		if (!renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_EXCHANGE))
			remove_dir(tmp);  /* now the old checkpoint */
		else if (errno != EINVAL && errno != ENOSYS)
			return rt_file_error(d, final, "cannot replace with %s: %s", tmp,
					     strerror(errno));
		else if (move_aside(run, final, tmp, d))
			return -1;
	}
	if (sync_dir(run))
		return rt_file_error(d, run, "cannot sync the run folder: %s", strerror(errno));
	return 0;
}

static int copy_file(const char *from, const char *to, Diag *d)
{
	void *data;
	uint64_t size;
	Hash128 h;
	rt_AtomicFile a;
	if (map_file(from, &data, &size, &h, d))
		return -1;
	int rc = rt_atomic_begin(&a, to, d);
	if (!rc && rt_atomic_write(&a, data, (size_t)size, d)) {
		rt_atomic_abort(&a);
		rc = -1;
	} else if (!rc)
		rc = rt_atomic_commit(&a, d);
	if (data)
		munmap(data, (size_t)size);
	return rc;
}

/* last.safetensors: a hard link to the committed model file, renamed over
 * the old one; a copy where the file system has no hard links. */
static int update_last(const char *run, const char *final, Diag *d)
{
	char model[PATH_MAX], last[PATH_MAX], tmp[PATH_MAX];
	if (path_of(model, final, file_name[0], d) || path_of(last, run, "last.safetensors", d))
		return -1;
	if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", last, (long)getpid()) >= (int)sizeof tmp)
		return rt_file_error(d, run, "path too long");
	unlink(tmp);
	if (link(model, tmp))
		return copy_file(model, last, d);
	if (rename(tmp, last)) {
		unlink(tmp);
		return rt_file_error(d, last, "cannot rename %s into place: %s", tmp,
				     strerror(errno));
	}
	if (sync_dir(run))
		return rt_file_error(d, run, "cannot sync the run folder: %s", strerror(errno));
	return 0;
}

static int by_step_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x < y) - (x > y);
}

/* The steps of the run's checkpoint folders, highest first. */
static int list_steps(const char *run, Vec *out, Diag *d)
{
	DIR *dp = opendir(run);
	if (!dp)
		return errno == ENOENT ? 0 : rt_file_error(d, run, "cannot open: %s",
							   strerror(errno));
	struct dirent *e;
	int rc = 0;
	while (!rc && (e = readdir(dp))) {
		int64_t s = ckpt_step(e->d_name);
		int64_t *slot = s < 0 ? NULL : vec_push(out, sizeof *slot);
		if (s >= 0 && !slot)
			rc = rt_file_error(d, run, "out of memory");
		else if (slot)
			*slot = s;
	}
	closedir(dp);
	if (out->len)
		qsort(out->data, out->len, sizeof(int64_t), by_step_desc);
	return rc;
}

/* Keep the `keep` highest steps up to `step`; steps above it belong to a
 * future this run abandoned by resuming earlier. Best effort: what cannot
 * be removed now is retried at the next save. */
static void prune(const char *run, int64_t step, int keep)
{
	Vec steps = {0};
	Diag ignore;
	diag_init(&ignore);
	int bad = list_steps(run, &steps, &ignore);
	diag_free(&ignore);
	int kept = 0;
	if (bad)
		steps.len = 0;   /* a partial list: prune nothing this time */
	for (size_t i = 0; i < steps.len; i++) {
		int64_t s = VEC_AT(steps, int64_t, i);
		if (s <= step && kept < keep) {
			kept++;
			continue;
		}
		char from[PATH_MAX], to[PATH_MAX];
		snprintf(from, sizeof from, "%s/ckpt-%lld", run, (long long)s);
		snprintf(to, sizeof to, "%s/.ckpt-del-%lld-%ld", run, (long long)s, (long)getpid());
		if (!rename(from, to))
			remove_dir(to);
	}
	vec_free(&steps);
	sync_dir(run);
}

int rt_checkpoint_save(const char *run, int64_t step, const rt_NamedTensor *model, int nmodel,
		       const rt_NamedTensor *optim, int noptim, const char *state_json, int keep,
		       Diag *d)
{
	char tmp[PATH_MAX], final[PATH_MAX], name[64], latest[PATH_MAX];
	if (step < 0 || keep < 1)
		return rt_file_error(d, run, "checkpoint step %lld and keep %d must be >= 0 and "
				     ">= 1", (long long)step, keep);
	if (mkdir(run, 0777) && errno != EEXIST)
		return rt_file_error(d, run, "cannot create the run folder: %s", strerror(errno));
	clean_stale(run);
	snprintf(name, sizeof name, ".ckpt-tmp-%ld", (long)getpid());
	if (path_of(tmp, run, name, d))
		return -1;
	snprintf(name, sizeof name, "ckpt-%lld", (long long)step);
	if (path_of(final, run, name, d) || path_of(latest, run, "LATEST", d))
		return -1;
	if (mkdir(tmp, 0777))
		return rt_file_error(d, tmp, "cannot create: %s", strerror(errno));
	if (write_files(tmp, step, model, nmodel, optim, noptim, state_json, d) ||
	    commit(run, tmp, final, d)) {
		remove_dir(tmp);
		return -1;
	}
	strcat(name, "\n");
	if (update_last(run, final, d) || write_text(latest, name, d))
		return -1;
	prune(run, step, keep);
	return 0;
}

/* --- the writer's lock --- */

/* The pid the holder wrote into the lock file, or 0 if there is none yet
 * (it writes it just after taking the lock). */
static long lock_holder(int fd)
{
	char buf[24];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	long pid = strtol(buf, NULL, 10);
	return pid > 0 ? pid : 0;
}

static int lock_busy(const char *run, int fd, Diag *d)
{
	long pid = lock_holder(fd);
	close(fd);
	if (pid)
		return rt_file_error(d, run, "in use by another training run (pid %ld)", pid);
	return rt_file_error(d, run, "in use by another training run");
}

int rt_run_lock(const char *run, bool create, int *fd, Diag *d)
{
	char p[PATH_MAX];
	struct stat st;
	*fd = -1;
	if (create && mkdir(run, 0777) && errno != EEXIST)
		return rt_file_error(d, run, "cannot create the run folder: %s", strerror(errno));
	if (stat(run, &st))
		return errno == ENOENT && !create ? 1 : rt_file_error(d, run, "cannot open: %s",
								       strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return rt_file_error(d, run, "not a folder (a run folder holds checkpoints)");
	if (path_of(p, run, ".lock", d))
		return -1;
	int f = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (f < 0)
		return rt_file_error(d, p, "cannot open the run folder's lock: %s", strerror(errno));
	if (flock(f, LOCK_EX | LOCK_NB)) {
		int e = errno;
		if (e == EWOULDBLOCK)
			return lock_busy(run, f, d);
		close(f);
		return rt_file_error(d, p, "cannot lock: %s", strerror(e));
	}
	/* Only for the message a second writer prints: the lock is the flock. */
	char pid[24];
	int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(f, 0) || pwrite(f, pid, (size_t)n, 0) != n) {
		close(f);
		return rt_file_error(d, p, "cannot write: %s", strerror(errno));
	}
	*fd = f;
	return 0;
}

void rt_run_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* --- loading --- */

/* What is wrong with a checkpoint folder: its contents contradict its
 * state.json (DAMAGED: loading moves on to an older checkpoint), or they
 * could not be checked at all (out of memory, an I/O error: loading stops,
 * because resuming from older data would make the next save prune the
 * newer checkpoint as an abandoned future). */
enum { LOAD_OK = 0, LOAD_DAMAGED = 1, LOAD_ERROR = -1 };

static int missing(const char *path)
{
	struct stat st;
	return stat(path, &st) && errno == ENOENT;
}

static int read_state(const char *path, char **text, Diag *d)
{
	rt_Reader r;
	if (missing(path))
		return rt_file_error(d, path, "missing"), LOAD_DAMAGED;
	if (rt_reader_open(&r, path, d))
		return LOAD_ERROR;
	int rc = LOAD_ERROR;
	if (r.size > MAX_STATE) {
		rt_file_error(d, path, "too large (%llu bytes)", (unsigned long long)r.size);
		rc = LOAD_DAMAGED;
	} else if (!(*text = mem_alloc((size_t)r.size + 1)))
		rt_file_error(d, path, "out of memory");
	else if (rt_reader_read(&r, 0, *text, (size_t)r.size, d)) {
		mem_free(*text);
		*text = NULL;
	} else {
		(*text)[r.size] = 0;
		rc = LOAD_OK;
	}
	rt_reader_close(&r);
	return rc;
}

/* The recorded size and checksum of one file in state.json. */
static int recorded(const cJSON *root, const char *name, uint64_t *size, const char **hex)
{
	const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(files, name);
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(f, "bytes");
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(f, "xxh3_128");
	if (!cJSON_IsNumber(b) || !(b->valuedouble >= 0) || !cJSON_IsString(x) ||
	    strlen(x->valuestring) != 32)
		return -1;
	*size = (uint64_t)b->valuedouble;
	*hex = x->valuestring;
	return 0;
}

/* Check one tensor file against state.json and parse it. Once the checksum
 * matches, the bytes are the ones that were written, so a failure to parse
 * them is a resource problem, not damage. */
static int load_file(const char *dir, int i, const cJSON *root, rt_TensorFile *out, Diag *d)
{
	char p[PATH_MAX], hex[33];
	const char *want;
	uint64_t want_size, size;
	void *data;
	Hash128 h;
	if (path_of(p, dir, file_name[i], d))
		return LOAD_ERROR;
	if (recorded(root, file_name[i], &want_size, &want))
		return rt_file_error(d, p, "state.json records no size and checksum for it"),
		       LOAD_DAMAGED;
	if (missing(p))
		return rt_file_error(d, p, "missing"), LOAD_DAMAGED;
	if (map_file(p, &data, &size, &h, d))
		return LOAD_ERROR;
	hash128_hex(h, hex);
	int rc = LOAD_DAMAGED;
	if (size != want_size)
		rt_file_error(d, p, "is %llu bytes, state.json says %llu (damaged or incomplete)",
			      (unsigned long long)size, (unsigned long long)want_size);
	else if (strcmp(hex, want))
		rt_file_error(d, p, "checksum %s does not match %s in state.json (damaged)", hex,
			      want);
	else
		rc = rt_safetensors_read_mem(p, data ? data : "", (size_t)size, out, d)
			     ? LOAD_ERROR : LOAD_OK;
	if (data)
		munmap(data, (size_t)size);
	return rc;
}

/* One folder; `step` >= 0 is the step its name promises. */
static int load_dir(const char *dir, int64_t step, rt_Checkpoint *out, Diag *d)
{
	char p[PATH_MAX];
	memset(out, 0, sizeof *out);
	if (path_of(p, dir, "state.json", d))
		return LOAD_ERROR;
	int rc = read_state(p, &out->state_json, d);
	if (rc)
		return rc;
	size_t deep = rt_json_too_deep(out->state_json, strlen(out->state_json));
	if (deep != SIZE_MAX) {
		rt_checkpoint_free(out);
		return rt_file_error(d, p, "nests arrays and objects deeper than the JSON parser's "
				     "limit of %d levels (at byte %zu)", RT_JSON_MAX_DEPTH, deep),
		       LOAD_DAMAGED;
	}
	cJSON *root = parse_json(out->state_json);
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "step");
	if (!root && json_oom) {
		rc = rt_file_error(d, p, "out of memory");
		goto done;
	}
	rc = LOAD_DAMAGED;
	if (!cJSON_IsObject(root) || !cJSON_IsNumber(s) || !(s->valuedouble >= 0) ||
	    s->valuedouble != (double)(int64_t)s->valuedouble) {
		rt_file_error(d, p, "not a checkpoint state (an object with a \"step\")");
		goto done;
	}
	out->step = (int64_t)s->valuedouble;
	if (step >= 0 && out->step != step) {
		rt_file_error(d, p, "says step %lld", (long long)out->step);
		goto done;
	}
	if ((rc = load_file(dir, 0, root, &out->model, d)) ||
	    (rc = load_file(dir, 1, root, &out->optim, d)))
		goto done;
	if (!(out->dir = mem_strdup(dir)))
		rc = rt_file_error(d, dir, "out of memory");
done:
	cJSON_Delete(root);
	if (rc)
		rt_checkpoint_free(out);
	return rc;
}

int rt_checkpoint_load(const char *dir, rt_Checkpoint *out, Diag *d)
{
	return load_dir(dir, -1, out, d) ? -1 : 0;
}

/* Failed attempts write into d; if an older checkpoint then loads, their
 * messages move to out->warning, each "path: error: why" line as "path:
 * why", and a last line names the checkpoint used in their place; d is
 * restored, since the load succeeded. */
static void move_to_warning(Diag *d, size_t len0, int nerror0, rt_Checkpoint *out)
{
	const char *from = d->text ? d->text + len0 : "";
	size_t cap = d->len - len0 + strlen(out->dir) + 96, n = 0;
	char *w = d->len > len0 ? mem_alloc(cap) : NULL;
	for (const char *line = from; w && *line;) {
		const char *end = strchr(line, '\n'), *err = strstr(line, ": error: ");
		end = end ? end + 1 : line + strlen(line);
		size_t head = err && err < end ? (size_t)(err - line) + 2 : 0;
		const char *rest = head ? err + 9 : line;
		memcpy(w + n, line, head);
		memcpy(w + n + head, rest, (size_t)(end - rest));
		n += head + (size_t)(end - rest);
		line = end;
	}
	if (w)
		snprintf(w + n, cap - n, "%sfell back to %s (step %lld), the newest checkpoint that "
			 "verifies\n", n && w[n - 1] != '\n' ? "\n" : "", out->dir,
			 (long long)out->step);
	out->warning = w;
	d->len = len0;
	if (d->text)
		d->text[len0] = 0;
	d->nerror = nerror0;
}

int rt_checkpoint_load_latest(const char *run, rt_Checkpoint *out, Diag *d)
{
	Vec steps = {0};
	memset(out, 0, sizeof *out);
	if (list_steps(run, &steps, d)) {
		vec_free(&steps);
		return -1;
	}
	size_t len0 = d->len;
	int nerror0 = d->nerror, rc = LOAD_DAMAGED;
	size_t i = 0;
	for (; i < steps.len && rc == LOAD_DAMAGED; i++) {
		char dir[PATH_MAX];
		int64_t s = VEC_AT(steps, int64_t, i);
		snprintf(dir, sizeof dir, "%s/ckpt-%lld", run, (long long)s);
		rc = load_dir(dir, s, out, d);
	}
	if (rc == LOAD_OK)
		move_to_warning(d, len0, nerror0, out);
	else if (rc == LOAD_DAMAGED && steps.len)
		rt_file_error(d, run, "no checkpoint verifies (%zu tried)", steps.len);
	size_t n = steps.len;
	vec_free(&steps);
	return rc == LOAD_OK ? 0 : !n ? 1 : -1;
}

void rt_checkpoint_free(rt_Checkpoint *c)
{
	rt_tensorfile_free(&c->model);
	rt_tensorfile_free(&c->optim);
	mem_free(c->dir);
	mem_free(c->state_json);
	mem_free(c->warning);
	memset(c, 0, sizeof *c);
}
