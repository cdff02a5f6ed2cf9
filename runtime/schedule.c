/* schedule.c: the trainer's defaults, its learning-rate schedule and the
 * optimiser scalars written to "optim.hparams" before each step.
 *
 * Everything is a pure function of (config, step), computed in double and
 * rounded to f32 once at the end, so a resumed run writes the very same
 * bits as an uninterrupted one, and tools/torch_train_reference.py, which
 * evaluates the same formulas in Python floats (IEEE double, the same libm
 * cos), gets the same values. */
#include "rt.h"

#include <math.h>
#include <string.h>

void rt_train_defaults(rt_TrainConfig *c)
{
	memset(c, 0, sizeof *c);
	c->batch = 16;
	c->seq = 128;
	c->steps = 1000;
	c->warmup = 100;
	c->schedule = RT_SCHED_COSINE;
	c->lr = 3e-4;
	c->beta1 = 0.9;
	c->beta2 = 0.95;
	c->eps = 1e-8;
	c->weight_decay = 0.1;
	c->clip = 1.0;
	c->seed = 1;
	c->order = RT_ORDER_RANDOM;
	c->val_fraction = 0.05;
	c->keep = 3;
	/* A long run should survive a crash without being asked to. */
	c->save_every = 500;
}

/* Warm-up is linear from lr / warmup at step 0 to lr at step warmup - 1,
 * so no step trains at a rate of zero. Cosine then runs over the remaining
 * steps from lr down to exactly 10% of lr at the last one (step steps - 1);
 * with fewer steps than that it stays at the floor. */
double rt_train_lr(const rt_TrainConfig *c, int64_t step)
{
	if (step < c->warmup)
		return c->lr * (double)(step + 1) / (double)c->warmup;
	if (c->schedule == RT_SCHED_CONSTANT)
		return c->lr;
	int64_t span = c->steps - 1 - c->warmup;
	double p = (double)(step - c->warmup) / (double)(span > 1 ? span : 1);
	if (p > 1)
		p = 1;
	return c->lr * (0.1 + 0.9 * 0.5 * (1 + cos(M_PI * p)));
}

void rt_train_hparams(const rt_TrainConfig *c, int64_t step, float hp[RT_HP_COUNT])
{
	double t = (double)(step + 1);   /* AdamW counts steps from 1 */
	memset(hp, 0, sizeof(float) * RT_HP_COUNT);
	hp[RT_HP_LR] = (float)rt_train_lr(c, step);
	hp[RT_HP_BETA1] = (float)c->beta1;
	hp[RT_HP_BETA2] = (float)c->beta2;
	hp[RT_HP_EPS] = (float)c->eps;
	hp[RT_HP_WEIGHT_DECAY] = (float)c->weight_decay;
	hp[RT_HP_BIAS_CORR1] = (float)(1 - pow(c->beta1, t));
	hp[RT_HP_BIAS_CORR2] = (float)(1 - pow(c->beta2, t));
	hp[RT_HP_CLIP] = (float)c->clip;
}
