/* embed_api.c: msw.h and a generated header against bad use, built by
 * run_embed_cli.sh from the installed tree with the model it compiled
 * (`--aot DIR --name model`, weights not embedded) and run as
 *
 *   embed_api GOOD.safetensors OTHER.safetensors TRUNCATED.safetensors
 *
 * GOOD fits the model, OTHER is another model's, TRUNCATED is GOOD cut
 * short. Every bad call must return its status with a message and leave
 * the model usable; the last line is "N passed, N failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static int npass, nfail;

#define CHECK(c)                                                                   \
	do {                                                                       \
		if (c)                                                             \
			npass++;                                                   \
		else {                                                             \
			nfail++;                                                   \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
		}                                                                  \
	} while (0)

/* rc is status and the message names what */
static void expect(msw_Model *m, int rc, int status, const char *what)
{
	if (rc == status && strstr(msw_errmsg(m), what)) {
		npass++;
		return;
	}
	nfail++;
	fprintf(stderr, "CHECK failed: got %d (%s): %s; wanted %d and '%s'\n", rc,
		msw_strerror(rc), msw_errmsg(m), status, what);
}

static int32_t tokens[MODEL_TOKENS_NUMEL], targets[MODEL_TARGETS_NUMEL];
static float logits[MODEL_LOGITS_NUMEL], logits2[MODEL_LOGITS_NUMEL], loss;

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: embed_api GOOD OTHER TRUNCATED\n");
		return 2;
	}
	CHECK(msw_abi_version() == MSW_ABI_VERSION);
	CHECK(msw_version() == MSW_VERSION_NUMBER);
	for (int s = 0; s < MSW_STATUS_COUNT; s++)
		CHECK(msw_strerror(s) && *msw_strerror(s));
	CHECK(!strcmp(msw_strerror(-1), "unknown status"));

	msw_Model *m = NULL;
	expect(m, msw_create(NULL, NULL, &m), MSW_EINVAL, "no image");
	msw_destroy(m);
	CHECK(msw_create(model_program(), NULL, NULL) == MSW_EINVAL);
	/* A caller arena too small, then one that fits. */
	static _Alignas(MSW_ARENA_ALIGN) unsigned char arena[MODEL_ARENA_SIZE];
	msw_Options o = {1, arena, MODEL_ARENA_SIZE - 1};
	expect(m, model_create(&o, &m), MSW_EINVAL, "bytes aligned to 64");
	msw_destroy(m);
	o.arena_size = sizeof arena;
	CHECK(model_create(&o, &m) == MSW_OK);
	CHECK(*msw_errmsg(m) == 0);

	/* Weights: missing file, truncated, another model's; then good ones. */
	expect(m, msw_load_weights(m, "no-such-file.safetensors"), MSW_EIO, "no-such-file");
	expect(m, msw_load_weights(m, argv[3]), MSW_EFORMAT, argv[3]);
	expect(m, msw_load_weights(m, argv[2]), MSW_EMISMATCH, "wte.weight");
	expect(m, msw_load_weights(m, NULL), MSW_EINVAL, "no path");
	expect(m, msw_load_weights_mem(m, "junk", 4, "junk"), MSW_EFORMAT, "junk");
	CHECK(msw_load_weights(m, argv[1]) == MSW_OK);

	/* Inputs: unknown, not an input, null, wrong size, token outside the vocabulary. */
	for (int i = 0; i < MODEL_TOKENS_NUMEL; i++) {
		tokens[i] = 'a' + i % 26;
		targets[i] = 'a' + (i + 1) % 26;
	}
	expect(m, msw_set_input(m, "nonsense", tokens, sizeof tokens), MSW_EINVAL, "no tensor 'nonsense'");
	expect(m, msw_set_input(m, "logits", tokens, sizeof tokens), MSW_EINVAL, "not an input");
	expect(m, msw_set_input(m, "tokens", NULL, sizeof tokens), MSW_EINVAL, "no data");
	expect(m, msw_set_input(m, "tokens", tokens, sizeof tokens - 4), MSW_EINVAL, "bytes");
	expect(m, msw_set_input(m, NULL, tokens, sizeof tokens), MSW_EINVAL, "no name");
	tokens[5] = MODEL_TOKENS_VOCAB;
	expect(m, msw_set_input(m, "tokens", tokens, sizeof tokens), MSW_EINVAL,
	       "is outside the vocabulary");
	tokens[5] = -1;
	expect(m, msw_set_input(m, "tokens", tokens, sizeof tokens), MSW_EINVAL, "at [0, 5]");
	tokens[5] = 'f';

	/* The typed entry points: a null input is refused before anything runs. */
	struct model_inputs in = {tokens, NULL};
	struct model_outputs out = {logits, &loss};
	expect(m, model_run(m, &in, &out), MSW_EINVAL, "no data for 'targets'");
	CHECK(model_run(m, NULL, &out) == MSW_EINVAL);
	in.targets = targets;
	CHECK(model_run(m, &in, &out) == MSW_OK);
	CHECK(loss > 4 && loss < 7);   /* near ln(256) untrained */
	/* Views and copies agree; a second run gives the same bytes. */
	msw_Tensor t;
	CHECK(msw_tensor(m, "logits", &t) == MSW_OK);
	CHECK(t.dtype == MSW_F32 && t.rank == MODEL_LOGITS_RANK && t.numel == MODEL_LOGITS_NUMEL);
	CHECK(t.nbytes == sizeof logits && !memcmp(t.data, logits, sizeof logits));
	CHECK((unsigned char *)t.data >= arena && (unsigned char *)t.data < arena + sizeof arena);
	expect(m, msw_tensor(m, "nonsense", &t), MSW_EINVAL, "nonsense");
	expect(m, msw_get_output(m, "logits", logits2, 7), MSW_EINVAL, "f32[");
	expect(m, msw_get_output(m, "logits", NULL, sizeof logits2), MSW_EINVAL, "nowhere");
	CHECK(msw_run(m) == MSW_OK);
	CHECK(msw_get_output(m, "logits", logits2, sizeof logits2) == MSW_OK);
	CHECK(!memcmp(logits, logits2, sizeof logits));
	/* Parameters read back through a view; the table matches the model. */
	const msw_ParamInfo *p = model_params();
	int64_t total = 0;
	for (int i = 0; i < MODEL_NPARAM; i++) {
		CHECK(msw_tensor(m, p[i].name, &t) == MSW_OK);
		CHECK(t.numel == p[i].numel && t.rank == p[i].rank);
		CHECK(p[i].kept <= p[i].numel);
		total += p[i].numel;
	}
	CHECK(total > 0);
	CHECK(msw_run(NULL) == MSW_EINVAL && msw_tensor(NULL, "x", &t) == MSW_EINVAL);
	int32_t gen[4];
	expect(m, msw_generate(m, tokens, 3, 4, NULL, gen), MSW_EINVAL, "no decode program");
	model_destroy(m);
	model_destroy(NULL);

	/* A model of its own arena, two threads: the same logits bit for bit. */
	msw_Options o2 = {2, NULL, 0};
	CHECK(model_create(&o2, &m) == MSW_OK);
	CHECK(msw_load_weights(m, argv[1]) == MSW_OK);
	CHECK(model_run(m, &in, &out) == MSW_OK);
	CHECK(!memcmp(logits, logits2, sizeof logits));
	model_destroy(m);
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail != 0;
}
