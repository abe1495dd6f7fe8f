/* SPDX-License-Identifier: MIT */
/*
 * lib_exports_only_samepage - the shared libsamepage exports the public API
 * and nothing else: every symbol its dynamic symbol table defines is named
 * samepage_* (besides the version node itself).  An exported internal symbol
 * (rb_insert_color, get_ksm_page, sp_lock, ...) could be interposed by an
 * application's function of the same name.
 *
 * Reads the ELF dynamic symbol table of $SAMEPAGE_BUILD_DIR/libsamepage.so
 * directly, so that it depends on no tool; lists every offender.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if __SIZEOF_POINTER__ == 8
typedef Elf64_Ehdr Ehdr;
typedef Elf64_Shdr Shdr;
typedef Elf64_Sym Sym;
typedef Elf64_Verdef Verdef;
typedef Elf64_Verdaux Verdaux;
#define ST_TYPE(i) ELF64_ST_TYPE(i)
#define ST_BIND(i) ELF64_ST_BIND(i)
#define OUR_CLASS ELFCLASS64
#else
typedef Elf32_Ehdr Ehdr;
typedef Elf32_Shdr Shdr;
typedef Elf32_Sym Sym;
typedef Elf32_Verdef Verdef;
typedef Elf32_Verdaux Verdaux;
#define ST_TYPE(i) ELF32_ST_TYPE(i)
#define ST_BIND(i) ELF32_ST_BIND(i)
#define OUR_CLASS ELFCLASS32
#endif

static const unsigned char *img;
static size_t img_len;

static void fail(const char *what)
{
	fprintf(stderr, "FAIL lib_exports_only_samepage: %s\n", what);
	exit(1);
}

/* A pointer to @len bytes at @off of the file, or failure if outside it. */
static const void *at(size_t off, size_t len)
{
	if (off > img_len || len > img_len - off)
		fail("malformed ELF file (offset outside the file)");
	return img + off;
}

static const char *str(const Shdr *strtab, size_t off)
{
	if (off >= strtab->sh_size)
		fail("malformed ELF file (string outside its table)");
	const char *s = at(strtab->sh_offset + off, 1);
	size_t room = strtab->sh_size - off;

	if (!memchr(s, '\0', room))
		fail("malformed ELF file (unterminated string)");
	return s;
}

/* Is @name the name of a version definition (SAMEPAGE_0)?  The linker puts
 * one absolute symbol of that name in .dynsym for each. */
static bool is_version_node(const Shdr *sh, int nsh, const char *name)
{
	for (int i = 0; i < nsh; i++) {
		if (sh[i].sh_type != SHT_GNU_verdef)
			continue;
		if (sh[i].sh_link >= (unsigned)nsh)
			fail("malformed ELF file (verdef link)");
		const Shdr *strtab = &sh[sh[i].sh_link];
		size_t off = sh[i].sh_offset;

		for (unsigned n = 0; n < sh[i].sh_info; n++) {
			const Verdef *vd = at(off, sizeof(*vd));
			const Verdaux *va = at(off + vd->vd_aux, sizeof(*va));

			if (!strcmp(str(strtab, va->vda_name), name))
				return true;
			if (!vd->vd_next)
				break;
			off += vd->vd_next;
		}
	}
	return false;
}

int main(void)
{
	const char *dir = getenv("SAMEPAGE_BUILD_DIR");
	char path[4096];
	struct stat st;
	int fd, bad = 0, good = 0;

	if (!dir) {
		printf("SKIP lib_exports_only_samepage: SAMEPAGE_BUILD_DIR is not set"
		       " (run it through ctest)\n");
		return 77;
	}
	snprintf(path, sizeof(path), "%s/libsamepage.so", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(path);
		return 1;
	}
	img_len = (size_t)st.st_size;
	img = mmap(NULL, img_len, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (img == MAP_FAILED) {
		perror("mmap");
		return 1;
	}

	const Ehdr *eh = at(0, sizeof(*eh));

	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != OUR_CLASS)
		fail("libsamepage.so is not an ELF file of this machine's class");
	if (eh->e_shentsize != sizeof(Shdr) || !eh->e_shnum)
		fail("libsamepage.so has no usable section headers");

	const Shdr *sh = at(eh->e_shoff, (size_t)eh->e_shnum * sizeof(Shdr));
	int nsh = eh->e_shnum, ndynsym = 0;

	for (int i = 0; i < nsh; i++) {
		if (sh[i].sh_type != SHT_DYNSYM)
			continue;
		ndynsym++;
		if (sh[i].sh_link >= (unsigned)nsh || sh[i].sh_entsize != sizeof(Sym))
			fail("malformed ELF file (dynsym header)");
		const Shdr *strtab = &sh[sh[i].sh_link];
		size_t n = sh[i].sh_size / sizeof(Sym);
		const Sym *sym = at(sh[i].sh_offset, n * sizeof(Sym));

		for (size_t k = 1; k < n; k++) {
			const char *name = str(strtab, sym[k].st_name);

			if (sym[k].st_shndx == SHN_UNDEF || ST_BIND(sym[k].st_info) == STB_LOCAL ||
			    ST_TYPE(sym[k].st_info) == STT_SECTION)
				continue;	/* not a definition others can bind to */
			if (sym[k].st_shndx == SHN_ABS && is_version_node(sh, nsh, name))
				continue;
			if (!strncmp(name, "samepage_", 9)) {
				good++;
				continue;
			}
			if (!bad++)
				fprintf(stderr, "FAIL lib_exports_only_samepage: %s exports"
					" symbols outside the public API:\n", path);
			fprintf(stderr, "  %s\n", name);
		}
	}
	if (ndynsym != 1)
		fail("libsamepage.so has no (or several) dynamic symbol tables");
	if (bad) {
		fprintf(stderr, "%d of %d exported symbols are not samepage_*\n", bad, bad + good);
		return 1;
	}
	/* the API itself must still be there */
	if (good < 10) {
		fprintf(stderr, "FAIL lib_exports_only_samepage: only %d samepage_* symbols"
			" exported, expected the 10 of include/samepage.h at least\n", good);
		return 1;
	}
	printf("lib_exports_only_samepage: %d symbols exported, all samepage_*\n", good);
	return 0;
}
