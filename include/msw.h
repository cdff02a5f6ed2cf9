/* msw.h: the public C API of the mswc runtime (libmswrt).
 *
 * An app embeds a model compiled ahead of time by
 *
 *     mswc compile MODEL.msw --aot DIR --name NAME [--weights W.safetensors]
 *
 * which writes DIR/NAME.o (the kernels, the program's description and,
 * with --embed-weights, the weights) and DIR/NAME.h (typed entry points,
 * shapes and the exact arena size as constants; it includes this header).
 * The app links NAME.o and libmswrt, nothing else (no LLVM, no compiler):
 *
 *     cc app.c DIR/NAME.o $(pkg-config --cflags --libs mswrt)
 *
 * Conventions. Every function that can fail returns an int status, MSW_OK
 * (0) or one of msw_Status; results come through out-parameters, and
 * msw_errmsg(model) says in words what went wrong last. The library never
 * prints, never exits and never aborts on bad input. Names are those of
 * the model: inputs ("tokens", "targets"), outputs ("logits"), the loss
 * ("loss") and parameters ("h.0.attn.c_attn.weight"). Tensors are dense,
 * C order, little-endian, and a model's shapes are fixed when it is
 * compiled. One model may be used by one thread at a time; separate models
 * are independent. docs/embedding.md has the whole story. */
#ifndef MSW_H
#define MSW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MSW_VERSION_MAJOR 0
#define MSW_VERSION_MINOR 1
#define MSW_VERSION_PATCH 0
#define MSW_VERSION_STRING "0.1.0"
#define MSW_VERSION_NUMBER (MSW_VERSION_MAJOR * 10000 + MSW_VERSION_MINOR * 100 + MSW_VERSION_PATCH)
/* The ABI: the layout of what compiled objects export and of the structs
 * below. An app checks it once at startup (msw_abi_version() ==
 * MSW_ABI_VERSION), and msw_create refuses an object of another ABI. */
#define MSW_ABI_VERSION 1

/* MSW_VERSION_NUMBER and MSW_ABI_VERSION of the library actually linked. */
int msw_version(void);
int msw_abi_version(void);

typedef enum msw_Status {
	MSW_OK = 0,
	MSW_ENOMEM,       /* out of memory */
	MSW_EINVAL,       /* a bad argument: a null pointer, an unknown name, a wrong size,
	                   * a token id outside the vocabulary */
	MSW_EIO,          /* a file could not be opened or read */
	MSW_EFORMAT,      /* bytes that are not what they claim: a damaged or truncated file */
	MSW_EMISMATCH,    /* weights that do not fit this model: a missing or unknown
	                   * tensor, another shape, another mask, a NaN */
	MSW_ECPU,         /* this CPU lacks features the model's code was compiled for */
	MSW_EVERSION,     /* an object compiled for another ABI */
	MSW_STATUS_COUNT
} msw_Status;
/* A short, static description of a status ("out of memory"); never NULL. */
const char *msw_strerror(int status);

typedef enum msw_DType { MSW_F32, MSW_I32, MSW_U8 } msw_DType;
enum { MSW_MAX_RANK = 6, MSW_ARENA_ALIGN = 64 };

/* What the NAME_program() of a compiled object returns: opaque, static
 * data of the object (never freed). */
typedef struct msw_Image msw_Image;
/* A model ready to run: the program bound to its code, its memory (one
 * arena of NAME_ARENA_SIZE bytes) and its worker threads. */
typedef struct msw_Model msw_Model;

/* Options of msw_create; all zero is the default. */
typedef struct msw_Options {
	int threads;          /* worker threads including the caller's; 0 = one per core */
	/* The arena in the caller's memory (e.g. a static buffer), or NULL to
	 * have it allocated: at least NAME_ARENA_SIZE bytes, aligned to
	 * MSW_ARENA_ALIGN, owned by the caller and outliving the model. Only
	 * for an object of one program (not a generation object). */
	void *arena;
	size_t arena_size;
} msw_Options;

/* Creates a model from a compiled object's image, checking the image's
 * ABI and this CPU's features first; weights embedded in the object are
 * loaded (otherwise parameters are zero until msw_load_weights). opts may
 * be NULL. On success *out is the model (msw_destroy it). On failure
 * *out is still a model that only holds the error for msw_errmsg, unless
 * memory ran out (then NULL; msw_errmsg(NULL) says so); msw_destroy it
 * either way. */
int msw_create(const msw_Image *image, const msw_Options *opts, msw_Model **out);
/* Frees the model, its threads and (unless the caller gave it) its arena. NULL is fine. */
void msw_destroy(msw_Model *m);
/* What went wrong last, as text ("weights.safetensors: error: parameter
 * 'wte.weight' is missing"), or "" after a success. Valid until the next
 * call on m. */
const char *msw_errmsg(const msw_Model *m);

/* Loads every parameter from a safetensors file (Hugging Face's format;
 * GPT-2's names and layouts), all or nothing: the file is validated first
 * (header, dtypes, shapes, offsets; every parameter present with the
 * model's dtype and shape, no unknown tensor, no NaN or infinity where a
 * mask keeps the weight, masks equal to those the model was compiled
 * with), and on any error the model's weights are as they were. */
int msw_load_weights(msw_Model *m, const char *path);
/* The same from a file's bytes in memory (the caller keeps them; they are
 * copied); name is used in messages. */
int msw_load_weights_mem(msw_Model *m, const void *data, size_t len, const char *name);

/* Inputs, runs and tensors are those of the object's first program: the
 * forward pass, or for a generation object its decode program. */
/* Copies an input in: nbytes must be the input's exact size. Token ids
 * (i32 inputs that index a table) must lie in the vocabulary; otherwise
 * MSW_EINVAL and the model's input is unchanged. */
int msw_set_input(msw_Model *m, const char *name, const void *data, size_t nbytes);
/* Runs the program once on the inputs as they are now. */
int msw_run(msw_Model *m);
/* Copies a tensor out (an output, the loss, an input or a parameter):
 * nbytes must be its exact size. */
int msw_get_output(msw_Model *m, const char *name, void *data, size_t nbytes);

/* A view of a tensor of the model: data points into the model's arena,
 * valid until msw_destroy; write inputs and read outputs through it
 * between runs without copying. */
typedef struct msw_Tensor {
	const char *name;     /* the model's, valid as long as the model */
	msw_DType dtype;
	int rank;
	int64_t dim[MSW_MAX_RANK];
	int64_t numel;
	size_t nbytes;
	void *data;
} msw_Tensor;
int msw_tensor(msw_Model *m, const char *name, msw_Tensor *out);

/* Generation, for objects compiled with `--aot DIR --generate` (a decode
 * program, one token per run with the KV caches as state, and a prefill
 * program that reads the prompt T tokens per run; docs/generation.md).
 * Sampling: temperature <= 0 is greedy (the likeliest token, the lowest
 * id on ties); otherwise among the top_k likeliest (0: all), within the
 * smallest set of mass top_p (<= 0 or >= 1: all), drawn with a generator
 * keyed by seed alone, so a seed gives the same tokens on every machine
 * and thread count, and the same as `mswc generate --seed`. The model sees
 * at most `window` positions (0: its context); when they are full, it
 * re-reads the last half and goes on, so max_new is not bounded by the
 * context. on_token, if set, sees each token as it is chosen. */
typedef struct msw_GenOptions {
	double temperature;
	int top_k;
	double top_p;
	uint64_t seed;
	int64_t window;
	void (*on_token)(void *user, int32_t token);
	void *user;
} msw_GenOptions;
/* Continues prompt[0 .. nprompt) (token ids in the vocabulary, nprompt >=
 * 1) by max_new tokens into out[0 .. max_new). The caches start empty:
 * every call is independent of the ones before. */
int msw_generate(msw_Model *m, const int32_t *prompt, int64_t nprompt, int64_t max_new,
		 const msw_GenOptions *opts, int32_t *out);

/* One parameter of a compiled model, as the generated NAME.h lists them:
 * kept is the number of weights its mask keeps (numel when dense). */
typedef struct msw_ParamInfo {
	const char *name;
	int rank;
	int64_t dim[MSW_MAX_RANK];
	int64_t numel;
	int64_t kept;
} msw_ParamInfo;

#ifdef __cplusplus
}
#endif

#endif
