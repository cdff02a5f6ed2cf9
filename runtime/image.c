/* image.c: the programs of an ahead-of-time compiled model.
 *
 * An object file written by `mswc compile --aot` exports one rt_Image
 * (NAME_program() returns it): programs by role, each a description
 * (program_file.c) and the table of its kernels' addresses in the
 * description's symbol order, the weights if they were embedded, and the
 * CPU features the code was compiled for. Reading a program checks the
 * image's magic and ABI first (an object from another mswc is refused, not
 * misread), then the CPU (code for AVX-512 on a CPU without it would die
 * of SIGILL in the middle of a run), then binds the table to the steps. */
#include "rt.h"

#include <string.h>

static rt_KernelFn from_table(void *user, const char *symbol, uint32_t index, Diag *d)
{
	const rt_ImageProgram *ip = user;
	(void)symbol;
	if (index >= ip->nfn || !ip->fn[index]) {
		diag_error(d, (SrcLoc){0}, "image: the %s program has no code for kernel %u (%s)",
			   ip->role, index, symbol);
		return NULL;
	}
	return ip->fn[index];
}

int rt_image_program(const rt_Image *img, const char *role, rt_Program **out, Diag *d)
{
	*out = NULL;
	if (!img || img->magic != RT_IMAGE_MAGIC)
		return diag_error(d, (SrcLoc){0}, "image: not a compiled model (bad magic)");
	if (img->abi != RT_IMAGE_ABI)
		return diag_error(d, (SrcLoc){0}, "image: %s was compiled by mswc %s for image ABI %u; "
				  "this runtime reads ABI %d (compile it again)",
				  img->name ? img->name : "the model",
				  img->version ? img->version : "?", img->abi, RT_IMAGE_ABI);
	if (rt_cpu_check(img->cpu_features, rt_cpu_host_features(), img->target, d))
		return -1;
	const rt_ImageProgram *ip = NULL;
	for (uint64_t i = 0; i < img->nprog && !ip; i++)
		if (img->prog[i].role && !strcmp(img->prog[i].role, role))
			ip = &img->prog[i];
	if (!ip)
		return diag_error(d, (SrcLoc){0}, "image: %s has no %s program", img->name, role);
	rt_Program *p;
	if (rt_program_read(img->name, ip->desc, ip->desc_len, &p, d))
		return -1;
	if (p->kernel.len != ip->nfn) {
		diag_error(d, (SrcLoc){0}, "image: the %s program names %zu kernels but its table "
			   "holds %llu", role, p->kernel.len, (unsigned long long)ip->nfn);
		rt_program_destroy(p);
		return -1;
	}
	if (rt_program_bind(p, from_table, (void *)ip, d)) {
		rt_program_destroy(p);
		return -1;
	}
	*out = p;
	return 0;
}
