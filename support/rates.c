/* rates.c: what the cost models know about this machine, as named numbers.
 *
 * The sparse-format cost model (passes/sparse_cost.c) and later the fusion
 * and placement models predict times from rates measured on the host
 * (backend/calibrate.c measures them; nothing here knows how). A HostRates
 * is plain data, a list of (name, value) pairs plus the CPU it was measured
 * on and where the numbers came from, so a model reads the names it needs
 * and a new model adds names without changing this file or the cache
 * format. Also here, because every layer may ask: the CPU's model string,
 * its cache sizes and its clock as the machine reports them.
 *
 * The cache file is text, one fact per line, ending in a checksum line:
 *   mswc host rates 1
 *   key <32 hex digits>          what the rates are valid for (the caller's key)
 *   cpu <model string>
 *   rate <name> <value>          %.17g, so values read back exactly
 *   end <16 hex digits>          xxh3-64 of every byte before this line
 * rates_read refuses (returns -1) a file that is missing, truncated, has
 * another key, a line it does not know, a value that is not a non-negative
 * finite number, or a checksum that does not match: a damaged file is
 * never half-used. rates_write writes a temporary file and renames it, so a
 * reader sees the old file or the new one, never a mix. */
#include "support.h"

#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static const char HEADER[] = "mswc host rates 1\n";
enum { RATES_FILE_MAX = 1 << 16 };

int rates_set(HostRates *r, const char *name, double v)
{
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->rate[i].name, name)) {
			r->rate[i].value = v;
			return 0;
		}
	if (r->n == RATES_MAX || strlen(name) >= RATES_NAME_MAX || strchr(name, ' '))
		return -1;
	snprintf(r->rate[r->n].name, RATES_NAME_MAX, "%s", name);
	r->rate[r->n++].value = v;
	return 0;
}

double rates_get(const HostRates *r, const char *name)
{
	for (int i = 0; r && i < r->n; i++)
		if (!strcmp(r->rate[i].name, name))
			return r->rate[i].value;
	return NAN;
}

/* Append printf output to a fixed buffer; -1 when it does not fit. */
static int put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap - *len)
		return -1;
	*len += (size_t)n;
	return 0;
}

int rates_write(const char *path, const HostRates *r, Hash128 key)
{
	char *buf = mem_alloc(RATES_FILE_MAX), hex[33], tmp[4200];
	if (!buf)
		return -1;
	size_t len = 0;
	hash128_hex(key, hex);
	int rc = put(buf, RATES_FILE_MAX, &len, "%skey %s\ncpu %s\n", HEADER, hex, r->cpu);
	for (int i = 0; !rc && i < r->n; i++)
		rc = put(buf, RATES_FILE_MAX, &len, "rate %s %.17g\n", r->rate[i].name,
			 r->rate[i].value);
	if (!rc)
		rc = put(buf, RATES_FILE_MAX, &len, "end %016" PRIx64 "\n", hash64(buf, len, 0));
	snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
	FILE *f = rc ? NULL : fopen(tmp, "wb");
	if (f) {
		bool ok = fwrite(buf, 1, len, f) == len;
		ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
		ok &= fclose(f) == 0;
		if (!ok || rename(tmp, path)) {
			remove(tmp);
			rc = -1;
		}
	} else {
		rc = -1;
	}
	mem_free(buf);
	return rc;
}

/* A finite number >= 0 filling the whole word. Zero is a real measurement:
 * the calibrator writes a per-row overhead of 0 when noise hides it, and a
 * file it wrote must read back (else every run would measure again). */
static int parse_value(const char *s, double *v)
{
	char *end;
	errno = 0;
	*v = strtod(s, &end);
	return end == s || *end || errno || !isfinite(*v) || !(*v >= 0) ? -1 : 0;
}

int rates_read(const char *path, const Hash128 *key, HostRates *r)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	char *buf = mem_alloc(RATES_FILE_MAX + 1);
	size_t len = buf ? fread(buf, 1, RATES_FILE_MAX + 1, f) : 0;
	fclose(f);
	HostRates out = {0};
	int rc = -1;
	if (!buf || len > RATES_FILE_MAX || len < sizeof HEADER || buf[len - 1] != '\n' ||
	    memcmp(buf, HEADER, sizeof HEADER - 1))
		goto done;
	buf[len] = 0;
	/* the checksum line is the last one */
	char *last = buf + len - 1;
	while (last > buf && last[-1] != '\n')
		last--;
	uint64_t sum;
	char tail;
	if (sscanf(last, "end %16" SCNx64 "%c", &sum, &tail) != 2 || tail != '\n' ||
	    strlen(last) != 21 || sum != hash64(buf, (size_t)(last - buf), 0))
		goto done;
	*last = 0;
	bool have_key = false;
	for (char *line = buf + sizeof HEADER - 1, *next; *line; line = next) {
		next = strchr(line, '\n');
		*next++ = 0;
		if (!strncmp(line, "key ", 4)) {
			char hex[33];
			if (key)
				hash128_hex(*key, hex);
			if (have_key || strlen(line + 4) != 32 || (key && strcmp(line + 4, hex)))
				goto done;
			have_key = true;
		} else if (!strncmp(line, "cpu ", 4)) {
			snprintf(out.cpu, sizeof out.cpu, "%s", line + 4);
		} else if (!strncmp(line, "rate ", 5)) {
			char *name = line + 5, *val = strchr(name, ' ');
			double v;
			if (!val)
				goto done;
			*val++ = 0;
			if (parse_value(val, &v) || !isnan(rates_get(&out, name)) ||
			    rates_set(&out, name, v))
				goto done;
		} else {
			goto done;
		}
	}
	if (!have_key)
		goto done;
	snprintf(out.source, sizeof out.source, "%s", path);
	*r = out;
	rc = 0;
done:
	mem_free(buf);
	return rc;
}

void host_cpu_model(char *buf, size_t n)
{
	char brand[49] = "";
#if defined(__x86_64__) || defined(__i386__)
	unsigned a, b, c, d, regs[12];
	if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x80000004u) {
		for (unsigned i = 0; i < 3; i++)
			__get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1],
				    &regs[4 * i + 2], &regs[4 * i + 3]);
		memcpy(brand, regs, 48);
		brand[48] = 0;
	}
	/* Hypervisors often shorten the brand ("AMD EPYC"); family, model and
	 * stepping still tell microarchitectures apart. */
	unsigned fam = 0, model = 0, step = 0;
	if (__get_cpuid(1, &a, &b, &c, &d)) {
		fam = (a >> 8) & 0xf;
		model = (a >> 4) & 0xf;
		step = a & 0xf;
		if (fam == 0xf)
			fam += (a >> 20) & 0xff;
		if (fam == 0x6 || fam >= 0xf)
			model |= ((a >> 16) & 0xf) << 4;
	}
	const char *s = brand;
	while (*s == ' ')
		s++;
	size_t end = strlen(s);
	while (end && s[end - 1] == ' ')
		end--;
	snprintf(buf, n, "%.*s (family %u, model %u, stepping %u)", (int)end,
		 *s ? s : "x86", fam, model, step);
#else
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[256];
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "model name", 10) || !strncmp(line, "CPU part", 8)) {
			char *v = strchr(line, ':');
			if (v) {
				snprintf(brand, sizeof brand, "%s", v + 2);
				brand[strcspn(brand, "\n")] = 0;
				break;
			}
		}
	if (f)
		fclose(f);
	snprintf(buf, n, "%s", *brand ? brand : "unknown CPU");
#endif
}

/* sysfs first: inside a VM, cpuid (and so sysconf) may describe the host's
 * whole socket, while sysfs describes what this kernel was told. */
static int64_t sysfs_cache(int level, bool data)
{
	for (int i = 0; i < 8; i++) {
		char path[96], text[32];
		int64_t lv = 0, size = 0;
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
		FILE *f = fopen(path, "r");
		if (!f)
			break;
		if (fscanf(f, "%" SCNd64, &lv) != 1)
			lv = 0;
		fclose(f);
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
		f = fopen(path, "r");
		if (!f || !fgets(text, sizeof text, f))
			text[0] = 0;
		if (f)
			fclose(f);
		if (lv != level || (data ? !strncmp(text, "Instruction", 11) : false))
			continue;
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
		f = fopen(path, "r");
		char unit = 0;
		if (f && fscanf(f, "%" SCNd64 "%c", &size, &unit) >= 1)
			size *= unit == 'K' ? 1024 : unit == 'M' ? 1024 * 1024 : 1;
		if (f)
			fclose(f);
		if (size > 0)
			return size;
	}
	return 0;
}

void host_cache_sizes(int64_t size[3])
{
	static const int name[3] = {_SC_LEVEL1_DCACHE_SIZE, _SC_LEVEL2_CACHE_SIZE,
				    _SC_LEVEL3_CACHE_SIZE};
	for (int i = 0; i < 3; i++) {
		size[i] = sysfs_cache(i + 1, i == 0);
		if (size[i] <= 0)
			size[i] = sysconf(name[i]);
		if (size[i] < 0)
			size[i] = 0;
	}
}

double host_clock_hz(void)
{
	double hz = 0;
	FILE *f = fopen("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "r");
	long long khz;
	if (f && fscanf(f, "%lld", &khz) == 1 && khz > 0)
		hz = 1e3 * (double)khz;
	if (f)
		fclose(f);
	if (hz > 0)
		return hz;
	f = fopen("/proc/cpuinfo", "r");
	char line[256];
	while (f && fgets(line, sizeof line, f)) {
		double mhz;
		if (!strncmp(line, "cpu MHz", 7) && sscanf(strchr(line, ':') ? strchr(line, ':') + 1
							  : line, "%lf", &mhz) == 1 && mhz > 0) {
			hz = 1e6 * mhz;
			break;
		}
	}
	if (f)
		fclose(f);
	return hz;
}
