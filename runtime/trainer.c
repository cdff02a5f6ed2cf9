/* trainer.c: the training loop.
 *
 * The program does the arithmetic: its forward phase computes the loss, its
 * backward phase the gradients, its update phase the global gradient norm,
 * clipping and AdamW (backend/). The trainer feeds it: before step s it
 * writes batch s of the data (a function of seed and s, data.c) into the
 * inputs "tokens" and "targets" and the scalars of schedule.c into
 * "optim.hparams". Nothing else enters the numbers, in particular not the
 * clock, so two runs with the same configuration are bitwise identical, and
 * a run resumed from a checkpoint at step k (weights, moments, k) continues
 * exactly as the uninterrupted run did.
 *
 * Between the backward and update phases the gradients are scanned: a NaN
 * or infinity there, or in the loss, stops the step before any weight
 * changes, and the step is re-run kernel by kernel (rt_exec_first_nonfinite,
 * with weights and moments saved around it) to name the first kernel whose
 * output went bad. The trainer never prints: progress goes to a callback,
 * rows to metrics.csv in the run folder. */
#include "rt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct rt_Trainer {
	rt_Exec *e;
	const rt_Program *p;
	const rt_Data *data;
	const rt_TrainConfig *c;
	int64_t step;
	int32_t *tokens, *targets;
	float *loss, *hp;
	rt_NamedTensor *model, *optim;   /* views of the param / moment slots, for saving;
	                                  * model[nmodel .. nmodel + nmask) are the masks (U8) */
	int nmodel, noptim, nmask;
	Vec grad;                        /* const rt_Slot *: the gradients to scan */
};

static const char *const sched_name[] = {"cosine", "constant"};
static const char *const order_name[] = {"random", "sequential"};

/* --- the configuration as JSON (state.json) --- */

char *rt_train_config_json(const rt_TrainConfig *c)
{
	char *s = mem_alloc(1024);
	if (!s)
		return NULL;
	/* %.17g: every double reads back to the same bits; the seed is a string
	 * because JSON readers keep numbers as doubles (53 bits). */
	snprintf(s, 1024,
		 "{\"batch\":%" PRId64 ",\"seq\":%" PRId64 ",\"steps\":%" PRId64 ",\"warmup\":%"
		 PRId64 ",\"schedule\":\"%s\",\"lr\":%.17g,\"beta1\":%.17g,\"beta2\":%.17g,"
		 "\"eps\":%.17g,\"weight_decay\":%.17g,\"clip\":%.17g,\"seed\":\"%" PRIu64 "\","
		 "\"order\":\"%s\",\"val_fraction\":%.17g,\"eval_every\":%" PRId64 ","
		 "\"eval_batches\":%" PRId64 ",\"save_every\":%" PRId64 "}",
		 c->batch, c->seq, c->steps, c->warmup, sched_name[c->schedule], c->lr, c->beta1,
		 c->beta2, c->eps, c->weight_decay, c->clip, c->seed, order_name[c->order],
		 c->val_fraction, c->eval_every, c->eval_batches, c->save_every);
	return s;
}

static int get_i64(const cJSON *o, const char *k, int64_t *v)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!j)
		return 0;
	if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) || j->valuedouble < 0)
		return -1;
	*v = (int64_t)j->valuedouble;
	return 0;
}

static int get_f64(const cJSON *o, const char *k, double *v)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!j)
		return 0;
	if (!cJSON_IsNumber(j))
		return -1;
	*v = j->valuedouble;
	return 0;
}

static int get_enum(const cJSON *o, const char *k, const char *const *names, int n, int *v)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!j)
		return 0;
	for (int i = 0; cJSON_IsString(j) && i < n; i++)
		if (!strcmp(j->valuestring, names[i])) {
			*v = i;
			return 0;
		}
	return -1;
}

static int get_seed(const cJSON *o, uint64_t *v)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, "seed");
	char *end;
	if (!j)
		return 0;
	if (cJSON_IsNumber(j) && j->valuedouble >= 0 && j->valuedouble < 0x1p53) {
		*v = (uint64_t)j->valuedouble;
		return 0;
	}
	if (!cJSON_IsString(j) || !*j->valuestring)
		return -1;
	unsigned long long u = strtoull(j->valuestring, &end, 10);
	if (*end)
		return -1;
	*v = u;
	return 0;
}

int rt_train_config_parse(const char *json, rt_TrainConfig *c, Diag *d)
{
	cJSON *o = cJSON_Parse(json);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return diag_error(d, (SrcLoc){0}, "trainer state: not a JSON object");
	}
	int sched = c->schedule, order = c->order;
	int bad = get_i64(o, "batch", &c->batch) | get_i64(o, "seq", &c->seq) |
		  get_i64(o, "steps", &c->steps) | get_i64(o, "warmup", &c->warmup) |
		  get_enum(o, "schedule", sched_name, 2, &sched) | get_f64(o, "lr", &c->lr) |
		  get_f64(o, "beta1", &c->beta1) | get_f64(o, "beta2", &c->beta2) |
		  get_f64(o, "eps", &c->eps) | get_f64(o, "weight_decay", &c->weight_decay) |
		  get_f64(o, "clip", &c->clip) | get_seed(o, &c->seed) |
		  get_enum(o, "order", order_name, 2, &order) |
		  get_f64(o, "val_fraction", &c->val_fraction) |
		  get_i64(o, "eval_every", &c->eval_every) |
		  get_i64(o, "eval_batches", &c->eval_batches) |
		  get_i64(o, "save_every", &c->save_every);
	cJSON_Delete(o);
	c->schedule = (rt_Schedule)sched;
	c->order = (rt_Order)order;
	if (bad)
		return diag_error(d, (SrcLoc){0}, "trainer state: a field has the wrong type");
	return 0;
}

/* --- setting up --- */

static const rt_Slot *find_kind(const rt_Program *p, rt_SlotKind kind)
{
	for (size_t i = 0; i < p->slot.len; i++)
		if (VEC_AT(p->slot, rt_Slot, i).kind == kind)
			return &VEC_AT(p->slot, rt_Slot, i);
	return NULL;
}

static int check_input(const rt_Program *p, const char *name, const rt_TrainConfig *c, Diag *d)
{
	const rt_Slot *s = rt_program_find(p, name);
	if (!s || s->kind != RT_SLOT_INPUT)
		return diag_error(d, (SrcLoc){0}, "the model has no input '%s' (the trainer feeds "
				  "i32 tokens and targets [batch, seq])", name);
	if (s->dtype != RT_I32 || s->rank != 2 || s->dim[0] != c->batch || s->dim[1] != c->seq)
		return diag_error(d, (SrcLoc){0}, "the model's input '%s' is %s rank %d [%" PRId64
				  ", %" PRId64 "]; the trainer feeds i32 [%" PRId64 ", %" PRId64
				  "] (batch, seq)", name, rt_dtype_name((rt_DType)s->dtype), s->rank,
				  s->dim[0], s->rank > 1 ? s->dim[1] : 0, c->batch, c->seq);
	return 0;
}

static int check_config(const rt_TrainConfig *c, const rt_Data *data, Diag *d)
{
	if (c->batch < 1 || c->seq < 1 || c->steps < 0 || c->warmup < 0 || c->keep < 1 ||
	    c->eval_every < 0 || c->eval_batches < 0 || c->save_every < 0)
		return diag_error(d, (SrcLoc){0}, "trainer: a count in the configuration is out of "
				  "range");
	if (!(c->lr >= 0) || !(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1) ||
	    !(c->eps > 0) || !(c->weight_decay >= 0) || !(c->clip >= 0))
		return diag_error(d, (SrcLoc){0}, "trainer: lr, betas, eps, weight decay or clip out "
				  "of range");
	if (rt_data_window(data, c->order, c->seed, 0, 0, c->batch, c->seq) < 0)
		return diag_error(d, (SrcLoc){0}, "the training data (%" PRId64 " tokens) is too short "
				  "for one window of seq + 1 = %" PRId64 " tokens", data->ntrain,
				  c->seq + 1);
	if (c->eval_every && rt_data_val_batches(data, c->batch, c->seq) < 1)
		return diag_error(d, (SrcLoc){0}, "the validation data (%" PRId64 " tokens) holds no "
				  "whole batch of %" PRId64 " x %" PRId64 " tokens (raise --val-fraction, "
				  "or turn validation off with --eval-every 0)",
				  data->ntok - data->ntrain, c->batch, c->seq + 1);
	return 0;
}

static int check_program(const rt_Program *p, Diag *d)
{
	const rt_Slot *hp = rt_program_find(p, "optim.hparams");
	if (p->phase_start[RT_PHASE_COUNT] == 0 ||
	    p->phase_start[RT_PHASE_UPDATE] == p->phase_start[RT_PHASE_UPDATE + 1] || !hp)
		return diag_error(d, (SrcLoc){0}, "the program has no optimiser update phase (compile "
				  "it for training with the optimiser)");
	if (hp->dtype != RT_F32 || hp->nbytes < (int64_t)sizeof(float) * RT_HP_COUNT)
		return diag_error(d, (SrcLoc){0}, "optim.hparams is not f32[%d]", RT_HP_COUNT);
	const rt_Slot *loss = find_kind(p, RT_SLOT_LOSS);
	if (!loss || loss->dtype != RT_F32 || loss->nbytes != 4)
		return diag_error(d, (SrcLoc){0}, "the program has no f32 scalar loss");
	return 0;
}

/* Views of every slot of `kind`, by name, for rt_checkpoint_save. */
static int collect(rt_Trainer *t, rt_SlotKind kind, rt_NamedTensor **out, int *n)
{
	const rt_Program *p = t->p;
	*out = mem_calloc(p->slot.len ? p->slot.len : 1, sizeof **out);
	if (!*out)
		return -1;
	*n = 0;
	for (size_t i = 0; i < p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(p->slot, rt_Slot, i);
		if (s->kind != kind)
			continue;
		(*out)[*n].name = s->name;
		rt_exec_slot_tensor(t->e, s, &(*out)[*n].t);
		(*n)++;
	}
	return 0;
}

/* Checkpoints hold each sparse param's mask beside it (U8 "<param>.mask"),
 * so last.safetensors loads in PyTorch with its masks. collect made room
 * for one entry per slot, so the masks fit after the params. */
static int add_masks(rt_Trainer *t)
{
	rt_NamedTensor *m;
	int n;
	if (rt_mask_tensors(t->p, &m, &n))
		return -1;
	for (int i = 0; i < n; i++)
		t->model[t->nmodel + i] = m[i];
	t->nmask = n;
	mem_free(m);
	return 0;
}

static int collect_grads(rt_Trainer *t)
{
	for (size_t i = 0; i < t->p->slot.len; i++) {
		const rt_Slot *s = &VEC_AT(t->p->slot, rt_Slot, i);
		const rt_Slot **g;
		if (s->kind != RT_SLOT_GRAD || s->dtype != RT_F32)
			continue;
		if (!(g = vec_push(&t->grad, sizeof *g)))
			return -1;
		*g = s;
	}
	return 0;
}

static void *slot_data(rt_Trainer *t, const rt_Slot *s)
{
	return (char *)rt_exec_arena(t->e) + s->offset;
}

int rt_trainer_create(rt_Exec *e, const rt_Data *data, const rt_TrainConfig *c, rt_Trainer **out,
		      Diag *d)
{
	*out = NULL;
	const rt_Program *p = rt_exec_program(e);
	if (check_config(c, data, d) || check_program(p, d) || check_input(p, "tokens", c, d) ||
	    check_input(p, "targets", c, d))
		return -1;
	rt_Trainer *t = mem_calloc(1, sizeof *t);
	if (!t)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	t->e = e;
	t->p = p;
	t->data = data;
	t->c = c;
	t->tokens = slot_data(t, rt_program_find(p, "tokens"));
	t->targets = slot_data(t, rt_program_find(p, "targets"));
	t->loss = slot_data(t, find_kind(p, RT_SLOT_LOSS));
	t->hp = slot_data(t, rt_program_find(p, "optim.hparams"));
	if (collect(t, RT_SLOT_PARAM, &t->model, &t->nmodel) ||
	    collect(t, RT_SLOT_OPTIM, &t->optim, &t->noptim) || collect_grads(t) ||
	    add_masks(t)) {
		rt_trainer_destroy(t);
		return diag_error(d, (SrcLoc){0}, "out of memory");
	}
	/* A fresh optimiser: zero moments, whatever the arena held. */
	for (int i = 0; i < t->noptim; i++)
		memset(t->optim[i].t.data, 0, (size_t)rt_nbytes(&t->optim[i].t));
	*out = t;
	return 0;
}

void rt_trainer_destroy(rt_Trainer *t)
{
	if (!t)
		return;
	mem_free(t->model);
	mem_free(t->optim);
	vec_free(&t->grad);
	mem_free(t);
}

int64_t rt_trainer_step_count(const rt_Trainer *t)
{
	return t->step;
}

/* --- resuming --- */

static int same_layout(const rt_Tensor *a, const rt_Tensor *b)
{
	if (a->dtype != b->dtype || a->rank != b->rank)
		return 0;
	for (int i = 0; i < a->rank; i++)
		if (a->dim[i] != b->dim[i])
			return 0;
	return 1;
}

/* Check every slot view against the file first (all problems reported),
 * copy only when all agree. */
static bool same_mask(const rt_Tensor *a, const rt_Tensor *b)
{
	if (!same_layout(a, b))
		return false;
	const uint8_t *x = a->data, *y = b->data;
	for (int64_t k = 0; k < rt_numel(a); k++)
		if ((x[k] != 0) != (y[k] != 0))
			return false;
	return true;
}

/* masks: the program's masks (checked against the file's), or NULL when a
 * ".mask" tensor in the file is as unknown as any other. */
static int restore(const rt_NamedTensor *dst, int n, const rt_NamedTensor *masks, int nmask,
		   const rt_TensorFile *f, const char *what, const char *dir, Diag *d)
{
	int bad = 0;
	for (int i = 0; i < n; i++) {
		const rt_NamedTensor *src = rt_tensorfile_find(f, dst[i].name);
		if (!src)
			bad = rt_file_error(d, dir, "%s '%s' is missing", what, dst[i].name);
		else if (!same_layout(&src->t, &dst[i].t))
			bad = rt_file_error(d, dir, "%s '%s' has another dtype or shape than the model's",
					    what, dst[i].name);
	}
	for (int i = 0; i < f->ntensor; i++) {
		bool known = false;
		for (int j = 0; j < n && !known; j++)
			known = !strcmp(f->tensor[i].name, dst[j].name);
		if (!known && masks && rt_is_mask_name(f->tensor[i].name)) {
			/* The program's own mask, or the mask of a param kept dense. */
			known = true;
			for (int j = 0; j < nmask; j++)
				if (!strcmp(f->tensor[i].name, masks[j].name) &&
				    !same_mask(&masks[j].t, &f->tensor[i].t))
					bad = rt_file_error(d, dir, "mask '%s' differs from the one the "
							    "model was compiled with", masks[j].name);
		}
		if (!known)
			bad = rt_file_error(d, dir, "%s '%s' is not in this model (another model or "
					    "other frozen parameters?)", what, f->tensor[i].name);
	}
	if (bad)
		return -1;
	for (int i = 0; i < n; i++)
		memcpy(dst[i].t.data, rt_tensorfile_find(f, dst[i].name)->t.data,
		       (size_t)rt_nbytes(&dst[i].t));
	return 0;
}

int rt_trainer_resume(rt_Trainer *t, const rt_Checkpoint *ck, Diag *d)
{
	if (restore(t->model, t->nmodel, t->model + t->nmodel, t->nmask, &ck->model, "parameter",
		    ck->dir, d) ||
	    restore(t->optim, t->noptim, NULL, 0, &ck->optim, "optimiser state", ck->dir, d))
		return -1;
	rt_apply_masks(t->e);
	t->step = ck->step;
	return 0;
}

/* --- one step --- */

static const char *phase_of(const rt_Program *p, int64_t i)
{
	static const char *const name[] = {"forward", "backward", "update"};
	for (int ph = RT_PHASE_COUNT - 1; ph >= 0; ph--)
		if ((uint32_t)i >= p->phase_start[ph])
			return name[ph];
	return name[0];
}

/* Weights and moments around the kernel-by-kernel re-run, which runs the
 * update phase too. An error path: allocating here is fine. */
static void *snapshot(rt_Trainer *t, bool back, void *buf)
{
	size_t n = 0;
	for (int k = 0; k < 2; k++) {
		const rt_NamedTensor *v = k ? t->optim : t->model;
		for (int i = 0, m = k ? t->noptim : t->nmodel; i < m; i++)
			n += (size_t)rt_nbytes(&v[i].t);
	}
	if (!back && !(buf = mem_alloc(n ? n : 1)))
		return NULL;
	size_t at = 0;
	for (int k = 0; k < 2; k++) {
		const rt_NamedTensor *v = k ? t->optim : t->model;
		for (int i = 0, m = k ? t->noptim : t->nmodel; i < m; i++) {
			size_t nb = (size_t)rt_nbytes(&v[i].t);
			if (back)
				memcpy(v[i].t.data, (char *)buf + at, nb);
			else
				memcpy((char *)buf + at, v[i].t.data, nb);
			at += nb;
		}
	}
	return buf;
}

static int nonfinite(rt_Trainer *t, const char *what, double value, Diag *d)
{
	int64_t step = t->step + 1;
	if (isnan(value))
		value = NAN;   /* print "nan", not "-nan" */
	void *saved = snapshot(t, false, NULL);
	if (!saved) {
		diag_error(d, (SrcLoc){0}, "step %" PRId64 ": the %s is %g (out of memory looking "
			   "for its origin)", step, what, value);
		return 1;
	}
	int64_t i = rt_exec_first_nonfinite(t->e);
	snapshot(t, true, saved);
	mem_free(saved);
	if (i < 0)
		diag_error(d, (SrcLoc){0}, "step %" PRId64 ": the %s is %g, but every kernel's output "
			   "is finite when re-run", step, what, value);
	else
		diag_error(d, (SrcLoc){0}, "step %" PRId64 ": the %s is %g; the first non-finite "
			   "value is the output of kernel %s (program step %" PRId64 ", %s phase)",
			   step, what, value, VEC_AT(t->p->step, rt_Step, i).name, i,
			   phase_of(t->p, i));
	return 1;
}

/* The global norm in double: finite f32 gradients cannot overflow it, so
 * an infinite result means an infinite or NaN element. */
static double grad_norm(rt_Trainer *t)
{
	double ss = 0;
	for (size_t i = 0; i < t->grad.len; i++) {
		const rt_Slot *s = VEC_AT(t->grad, const rt_Slot *, i);
		const float *g = slot_data(t, s);
		for (int64_t k = 0, n = s->nbytes / 4; k < n; k++)
			ss += (double)g[k] * g[k];
	}
	return sqrt(ss);
}

int rt_trainer_step(rt_Trainer *t, rt_TrainStatus *st, Diag *d)
{
	const rt_TrainConfig *c = t->c;
	int64_t s = t->step;
	memset(st, 0, sizeof *st);
	if (rt_data_batch(t->data, c->order, c->seed, s, c->batch, c->seq, t->tokens, t->targets, d))
		return -1;
	rt_train_hparams(c, s, t->hp);
	rt_exec_run_phase(t->e, RT_PHASE_FORWARD);
	double loss = *t->loss;
	if (!isfinite(loss))
		return nonfinite(t, "loss", loss, d);
	rt_exec_run_phase(t->e, RT_PHASE_BACKWARD);
	/* The update phase sums squares in f64 but stores the norm and scales
	 * gradients in f32: a norm beyond sqrt(FLT_MAX) cannot be represented
	 * there, so it counts as non-finite already. */
	double gn = grad_norm(t);
	if (!(gn < sqrt(FLT_MAX)))
		return nonfinite(t, "gradient norm", gn, d);
	rt_exec_run_phase(t->e, RT_PHASE_UPDATE);
	t->step = s + 1;
	st->step = s + 1;
	st->steps = c->steps;
	st->loss = loss;
	st->lr = rt_train_lr(c, s);
	st->grad_norm = t->hp[RT_HP_GRAD_NORM];
	st->val_loss = NAN;
	return 0;
}

/* --- validation, saving, the loop --- */

double rt_trainer_eval(rt_Trainer *t, int64_t nbatch, Diag *d)
{
	const rt_TrainConfig *c = t->c;
	int64_t have = rt_data_val_batches(t->data, c->batch, c->seq);
	if (have < 1) {
		diag_error(d, (SrcLoc){0}, "the validation data holds no whole batch");
		return NAN;
	}
	if (nbatch <= 0 || nbatch > have)
		nbatch = have;
	double sum = 0;
	for (int64_t b = 0; b < nbatch; b++) {
		if (rt_data_val_batch(t->data, b, c->batch, c->seq, t->tokens, t->targets, d))
			return NAN;
		rt_exec_run_phase(t->e, RT_PHASE_FORWARD);
		sum += *t->loss;
	}
	return sum / (double)nbatch;
}

int rt_trainer_save(rt_Trainer *t, Diag *d)
{
	const rt_TrainConfig *c = t->c;
	if (!c->run_dir)
		return 0;
	char *cfg = rt_train_config_json(c);
	if (!cfg)
		return diag_error(d, (SrcLoc){0}, "out of memory");
	/* The data position is implied by the step (data.c); it is recorded
	 * for people reading the file. */
	size_t n = strlen(cfg) + 128;
	char *state = mem_alloc(n);
	if (!state) {
		mem_free(cfg);
		return diag_error(d, (SrcLoc){0}, "out of memory");
	}
	cfg[strlen(cfg) - 1] = 0;
	snprintf(state, n, "%s,\"rows_read\":%" PRId64 "}", cfg, t->step * c->batch);
	int rc = rt_checkpoint_save(c->run_dir, t->step, t->model, t->nmodel + t->nmask, t->optim,
				    t->noptim, state, c->keep, d);
	mem_free(state);
	mem_free(cfg);
	return rc;
}

static double seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool every(int64_t n, const rt_TrainStatus *st)
{
	return n > 0 && (st->step % n == 0 || st->step == st->steps);
}

/* Validation, metrics row and checkpoint after a step. The row goes first:
 * a crash between the two leaves a row beyond the newest checkpoint, which
 * resuming drops and writes again; the other order would lose the row. */
static int after_step(rt_Trainer *t, rt_TrainStatus *st, rt_Metrics *m, Diag *d)
{
	const rt_TrainConfig *c = t->c;
	if (every(c->eval_every, st)) {
		st->val_loss = rt_trainer_eval(t, c->eval_batches, d);
		if (isnan(st->val_loss))
			return -1;
	}
	rt_MetricsRow row = {st->step, st->loss, st->lr, st->grad_norm, st->tokens_per_s,
			     st->val_loss, st->elapsed_s};
	if (m->f && rt_metrics_append(m, &row, d))
		return -1;
	if (c->run_dir && (every(c->save_every, st) || st->step == st->steps)) {
		if (rt_trainer_save(t, d))
			return -1;
		st->saved = true;
	}
	return 0;
}

int rt_trainer_run(rt_Trainer *t, rt_TrainCallback cb, void *user, Diag *d)
{
	const rt_TrainConfig *c = t->c;
	rt_Metrics m = {0};
	int rc = -1;
	if (c->run_dir && mkdir(c->run_dir, 0777) && errno != EEXIST)
		return rt_file_error(d, c->run_dir, "cannot create the run folder: %s",
				     strerror(errno));
	if (c->run_dir && rt_metrics_open(&m, c->run_dir, t->step > 0 ? t->step : -1, d))
		return -1;
	double t0 = seconds(), last = t0;
	while (t->step < c->steps) {
		rt_TrainStatus st;
		int r = rt_trainer_step(t, &st, d);
		if (r) {
			rc = r < 0 ? -1 : 2;
			goto done;
		}
		double now = seconds();
		st.elapsed_s = now - t0;
		st.tokens_per_s = (double)(c->batch * c->seq) / (now - last > 0 ? now - last : 1e-9);
		if (after_step(t, &st, &m, d))
			goto done;
		if (cb && cb(user, &st)) {
			rc = 1;
			if (!st.saved && rt_trainer_save(t, d))
				rc = -1;
			goto done;
		}
		last = seconds();   /* the callback's and evaluation's time is not the step's */
	}
	rc = 0;
done:
	if (m.f && rt_metrics_close(&m, d) && rc >= 0)
		rc = -1;
	return rc;
}
