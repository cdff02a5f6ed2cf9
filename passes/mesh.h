/* mesh.h: a virtual mesh of compute tiles (passes/mesh.c), the placement
 * of the step onto it (passes/place.c) and the cost model that predicts
 * the step there (passes/place_cost.c); docs/mesh.md. */
#ifndef MSW_PASSES_MESH_H
#define MSW_PASSES_MESH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../ir/ir.h"

/* A grid of rows x cols tiles, each with its own memory and compute,
 * linked to its four neighbours. Every figure is per tile, and says where
 * it came from (a preset's text, a file's line, a measured host rate). */
typedef enum MeshFig {
	MF_TILES, MF_MEMORY, MF_DENSE, MF_SPARSE, MF_LOCAL, MF_LINK, MF_LATENCY, MF_CLOCK,
	MF_COUNT
} MeshFig;
extern const char *const mesh_fig_name[MF_COUNT];   /* the keys of the text format */

enum { MESH_MAX_TILES = 1 << 24, MESH_FROM_MAX = 200 };

typedef struct Mesh {
	char name[64];
	uint32_t rows, cols;
	int64_t memory;       /* bytes per tile */
	double dense;         /* flop/s per tile: dense products, elementwise arithmetic */
	double sparse;        /* useful flop/s per tile: products over a sparse weight's
	                       * kept entries (2 per kept entry and row) */
	double local;         /* bytes/s a tile reads and writes its own memory; 0: not a limit */
	double link;          /* bytes/s over one link, per direction */
	double latency;       /* seconds per hop */
	double clock;         /* Hz; 0: unknown */
	char from[MF_COUNT][MESH_FROM_MAX];  /* where each figure came from */
	char rates[2 * RATES_TEXT_MAX + 32];      /* host-measured figures: the CPU and the rates' source */
	Source *src;          /* the description's text (a file or the --mesh argument), owned */
	SrcLoc loc;           /* the description, for errors about it */
	SrcLoc memory_loc;    /* where the memory was given: refusals point here */
} Mesh;

/* What the host preset (and RxC, whose other figures are the host's)
 * needs: the worker threads (the tiles) and the host rates, asked of
 * get_rates only when a description needs them (measuring takes seconds). */
typedef struct MeshHost {
	int threads;          /* 0: every core */
	int (*get_rates)(void *ctx, const HostRates **out, Diag *d);
	void *ctx;
} MeshHost;

/* mesh.c. A description is
 *   host | ipu | wafer          a preset (docs/mesh.md cites the figures)
 *   RxC[:MEMORY]                R rows, C columns, the host's other figures
 *   FILE                        the text format of mesh.c
 * 0, or -1 with a located error (file:line:col, or --mesh:1:col for the
 * argument). *m owns its source text: mesh_free. */
int mesh_parse(const char *spec, const MeshHost *host, Mesh *m, Diag *d);
/* A description given as text, or as len bytes read from a file (NUL
 * bytes and all); name is what diagnostics call it. */
int mesh_parse_text(const char *name, const char *text, const MeshHost *host, Mesh *m, Diag *d);
int mesh_parse_mem(const char *name, const void *data, size_t len, const MeshHost *host, Mesh *m,
		   Diag *d);
void mesh_free(Mesh *m);
static inline int64_t mesh_tiles(const Mesh *m)
{
	return (int64_t)m->rows * m->cols;
}
/* The figures, one line each, with where they came from. */
void mesh_print(FILE *f, const Mesh *m);
/* "624.0 KiB", "1.5 GFLOP/s"-style numbers for reports. */
void mesh_fmt_bytes(char *buf, size_t n, double bytes);
void mesh_fmt_rate(char *buf, size_t n, double v, const char *unit);
void mesh_fmt_time(char *buf, size_t n, double seconds);

/* place_cost.c: the cost model on a placement (docs/mesh.md, "Cost model").
 *
 * How each node's work and bytes count on a mesh: a sparse weight (one
 * with a decided mask) is stored compressed when its products are faster
 * so on this mesh, and then every tensor of its shape (the weight, its
 * gradient, its moments) holds its kept entries only. */
typedef struct PlaceUnit {
	ValId anchor;         /* the weight (a param); for a unit of activations, its first
	                       * product (a matmul); VAL_NONE for the one unit of a graph
	                       * without either */
	ValId weight;         /* the weight its layer is named by: the anchor, or for
	                       * activations the weight they came from; may be VAL_NONE */
	bool is_weight;
	bool sparse;          /* stored and computed compressed */
	double density;       /* kept / numel (1 without a mask) */
	int64_t numel;        /* the weight's elements */
} PlaceUnit;
/* The units of a graph, in step order: one per weight (a param of rank
 * >= 2), and one per forward product of two activations that reads none
 * of another such unit (attention's scores), *nunit of them, mem_alloc'd.
 * unit_of[v] (mem_alloc'd, nnode entries, may be NULL) is the index of v's
 * unit, found by structure: the weight and its mask, moments and update;
 * every product reading it; its gradient; then every other node joins the
 * unit of its largest operand (a backward node that of its largest forward
 * operand, the activation it differentiates), sources the unit of their
 * first reader. */
int place_units(const Graph *g, const Mesh *m, PlaceUnit **units, int *nunit,
		uint32_t **unit_of, Diag *d);

/* How a node runs when split over k tiles (place_node_cost). */
typedef enum PlaceKind {
	PK_FREE,        /* a source or a view: no work of its own */
	PK_LOCAL,       /* row-wise: elementwise, last-axis reductions, the update */
	PK_REDUCE,      /* a reduction across the split rows: partial results combined */
	PK_SHUFFLE,     /* a permute: all-to-all between the shards */
	PK_FORWARD,     /* x @ W on W's tiles (K split by rows, N by columns) */
	PK_INPUT_GRAD,  /* dy @ W^T */
	PK_WEIGHT_GRAD, /* x^T @ dy, W's shape */
	PK_MATMUL,      /* a product of two activations: rows split, B broadcast */
	PK_GATHER,      /* rows of a table on the table's tiles */
	PK_KIND_COUNT
} PlaceKind;
extern const char *const place_kind_name[PK_KIND_COUNT];
typedef struct NodeCost {
	uint8_t kind;         /* PlaceKind */
	bool sparse;          /* computed over kept entries, at the sparse rate */
	double flops;         /* total useful flops */
	double bytes;         /* bytes the node reads and writes in its tiles' memory */
	double out_bytes;     /* what its result occupies on the mesh (0: a view or in place) */
	double comm_a, comm_b;  /* the bytes of its shard-to-shard exchange (kind-specific) */
} NodeCost;
/* Whether a node's value is held for the whole step: params, moments and
 * other states, masks, inputs (a const or iota is a fill, live from its node
 * to its last reader like any value). */
static inline bool place_holds(const Node *n)
{
	return n->op == OP_PARAM || n->op == OP_STATE || n->op == OP_MASK || n->op == OP_INPUT;
}
/* The buffer a node's value lives in: a view or an in-place update lives
 * in its operand's (root is filled in node order). */
static inline ValId place_root(const Graph *g, ValId v, const ValId *root)
{
	const Node *x = ir_node(g, v);
	bool alias = (ir_op[x->op].flags & OPF_VIEW) || x->op == OP_ADAMW ||
		     x->op == OP_ADAMW_MASKED || x->op == OP_CACHE_WRITE;
	return alias ? root[ir_operand(g, x, 0)] : v;
}
enum { PLACE_FOREVER = UINT32_MAX };
/* last[b] for every buffer b (a root): the last node that reads it, or
 * PLACE_FOREVER for what lives the whole step (place_holds, the outputs,
 * the loss). */
void place_lifetimes(const Graph *g, const Uses *uses, const ValId *root, uint32_t *last);
/* unit_of and units as place_units gave them. */
void place_node_cost(const Graph *g, ValId v, const PlaceUnit *units, const uint32_t *unit_of,
		     NodeCost *c);
/* Seconds for node c on an r x c rectangle: its compute share, and its
 * exchange between shards (bytes over links + hops x latency). */
double place_compute_time(const NodeCost *c, const Mesh *m, int64_t tiles);
double place_exchange_time(const NodeCost *c, const Mesh *m, uint32_t rows, uint32_t cols);

/* The placement evaluated: memory per tile (peak over the step), the
 * predicted step (a list schedule: a node starts when its operands have
 * arrived and its tiles are free), link loads. */
typedef struct PlaceStats {
	int64_t tiles_used;
	int64_t mem_max, mem_total;     /* peak bytes: the fullest tile, summed over used tiles */
	uint32_t mem_max_row, mem_max_col;
	ValId mem_max_at;               /* the node after which the fullest tile peaks */
	double step;                    /* predicted seconds */
	double crit_compute, crit_exchange, crit_transfer;   /* the critical path: compute,
	                                 * exchanges between a node's shards, transfers between nodes */
	double busy;                    /* tile-seconds of compute and exchange */
	double link_max;                /* bytes over the busiest link */
	uint32_t link_row, link_col;    /* its source tile */
	int link_dir;                   /* 0 east, 1 west, 2 south, 3 north */
	double link_bytes;              /* over all links (hops x bytes) */
	double phase[3];                /* finish time of forward, backward, update */
} PlaceStats;
/* 0, or -1 (out of memory). With over (may be NULL), the buffers on the
 * fullest tile at its peak, largest first, go there (see place.c). */
typedef struct PlaceBuffer {
	ValId v;
	int64_t bytes;        /* its share on the tile */
} PlaceBuffer;
int place_evaluate(const Graph *g, const Mesh *m, PlaceStats *s, Vec *over, Diag *d);
/* The same, and each tile's peak bytes into peak[row * cols + col]. */
int place_evaluate_tiles(const Graph *g, const Mesh *m, PlaceStats *s, Vec *over, int64_t *peak,
			 Diag *d);
/* The summary `mswc place` prints: the mesh, tiles used, memory per tile,
 * the predicted step and its parts, the busiest link, one line per unit. */
int place_report(FILE *f, const Graph *g, const Mesh *m, Diag *d);
/* Which part of the step a node is: 0 forward (what the outputs and the
 * loss read), 1 backward (the rest of what autodiff built), 2 update (the
 * optimiser's ops and the sources only they read). phase: nnode bytes. */
int place_phases(const Graph *g, uint8_t *phase, Diag *d);
/* Display names: a unit's layer, by its weight's hierarchical name ("h.3"
 * for "h.3.mlp.c_fc.weight", "wte" for "wte.weight"), and the unit's own
 * (the weight's name, or "h.3 activations %201" for a unit of
 * activations). */
void place_layer_name(const Graph *g, const PlaceUnit *u, char *buf, size_t n);
void place_unit_name(const Graph *g, const PlaceUnit *u, char *buf, size_t n);

#endif
