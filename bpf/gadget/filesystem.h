/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Paths of files without bpf_d_path() (not allowed in tracepoints), overlayfs upper layer. */
#ifndef __GADGET_FILESYSTEM_H
#define __GADGET_FILESYSTEM_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/*
 * GADGET_PATH_MAX: the size of a path field in an event (`char file[GADGET_PATH_MAX]`), 512 as
 * in Inspektor Gadget's header. The walk below builds paths in a larger per-CPU scratch.
 */
#define GADGET_PATH_MAX		512
#define GADGET_PATH_SCRATCH	4096	/* scratch size, power of 2 */
#define GADGET_PATH_DEPTH	64	/* dentries and mounts walked */
#define GADGET_NAME_MAX		255

#define GADGET_OVERLAYFS_MAGIC	0x794c7630

/*
 * The path is built backwards from buf[GADGET_PATH_SCRATCH] (always NUL); the tail absorbs
 * the last name. pos lives here, not in a register, so the verifier does not track its range
 * per iteration (which made the loop unverifiable).
 */
struct gadget_path_scratch {
	__u32 pos;
	char buf[GADGET_PATH_SCRATCH + GADGET_NAME_MAX + 1];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gadget_path_scratch);
} gadget_path_heap SEC(".maps");

/*
 * Builds the absolute path of `p` (a kernel pointer) in this CPU's scratch: the path is
 * s->buf[s->pos .. GADGET_PATH_SCRATCH), NUL-terminated. Mounts are crossed up to the root of
 * the mount tree; at most GADGET_PATH_DEPTH components; a path longer than the scratch keeps
 * its end (the components nearest the file). NULL when `p` has no dentry or mount.
 */
static __always_inline struct gadget_path_scratch *gadget_path_build(const struct path *p)
{
	struct gadget_path_scratch *s;
	struct dentry *dentry, *parent;
	struct vfsmount *vfsmnt;
	struct mount *mnt, *mnt_parent;
	const unsigned char *name;
	volatile __u32 *vpos;
	__u32 zero = 0, pos, len;
	int i;

	s = bpf_map_lookup_elem(&gadget_path_heap, &zero);
	if (!s)
		return NULL;

	dentry = BPF_CORE_READ(p, dentry);
	vfsmnt = BPF_CORE_READ(p, mnt);
	if (!dentry || !vfsmnt)
		return NULL;
	mnt = (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
	vpos = &s->pos;
	*vpos = GADGET_PATH_SCRATCH;
	s->buf[GADGET_PATH_SCRATCH] = '\0';

	for (i = 0; i < GADGET_PATH_DEPTH; i++) {
		if (dentry == BPF_CORE_READ(vfsmnt, mnt_root)) {
			mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
			if (mnt_parent == mnt)
				break;
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = mnt_parent;
			vfsmnt = &mnt->mnt;
			continue;
		}
		parent = BPF_CORE_READ(dentry, d_parent);
		if (dentry == parent)	/* root of a detached tree */
			break;

		len = BPF_CORE_READ(dentry, d_name.len) & GADGET_NAME_MAX;
		name = BPF_CORE_READ(dentry, d_name.name);
		pos = *vpos;
		if (len + 1 > pos)
			break;
		pos -= len + 1;
		s->buf[pos & (GADGET_PATH_SCRATCH - 1)] = '/';
		bpf_probe_read_kernel(&s->buf[(pos + 1) & (GADGET_PATH_SCRATCH - 1)], len, name);
		*vpos = pos;
		dentry = parent;
	}

	pos = *vpos;
	if (pos == GADGET_PATH_SCRATCH) {
		pos--;
		s->buf[pos & (GADGET_PATH_SCRATCH - 1)] = '/';
		*vpos = pos;
	}
	return s;
}

/*
 * Writes the absolute path of `p` (a kernel pointer) into buf, NUL-terminated, cut to
 * size - 1 bytes (keeping its beginning). `size` should be a constant. Returns the length
 * written, or -1 (buf then holds "").
 */
static __always_inline long gadget_read_path(const struct path *p, char *buf, __u32 size)
{
	struct gadget_path_scratch *s;
	__u32 pos;
	__u64 n;

	buf[0] = '\0';
	s = gadget_path_build(p);
	if (!s)
		return -1;
	pos = s->pos;
	if (pos >= GADGET_PATH_SCRATCH)
		return -1;
	n = GADGET_PATH_SCRATCH - pos;
	if (n > size - 1)
		n = size - 1;
	barrier_var(n);
	if (n > size - 1)
		return -1;
	bpf_probe_read_kernel(buf, n, &s->buf[pos & (GADGET_PATH_SCRATCH - 1)]);
	buf[n] = '\0';
	return n;
}

/*
 * Inspektor Gadget's helper: the absolute path of `path` (a kernel pointer, e.g.
 * `&file->f_path`) as a NUL-terminated string in this CPU's scratch map, valid until the next
 * path built on this CPU (copy it out with bpf_probe_read_kernel_str()). NULL on failure. Same
 * walk as gadget_read_path(); a path longer than GADGET_PATH_SCRATCH keeps its end.
 */
static __always_inline char *get_path_str(const struct path *path)
{
	struct gadget_path_scratch *s = gadget_path_build(path);
	__u32 pos;

	if (!s)
		return NULL;
	pos = s->pos;
	if (pos >= GADGET_PATH_SCRATCH)
		return NULL;
	return &s->buf[pos & (GADGET_PATH_SCRATCH - 1)];
}

/* Whether a file on overlayfs lives in the upper layer (copied up or created). */
static __always_inline bool gadget_file_upper_layer(struct file *file)
{
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	struct ovl_inode *oi;

	if (!inode || BPF_CORE_READ(inode, i_sb, s_magic) != GADGET_OVERLAYFS_MAGIC)
		return false;
	if (!bpf_core_type_exists(struct ovl_inode))
		return false;
	/* struct ovl_inode embeds the vfs inode */
	oi = (void *)inode - bpf_core_field_offset(struct ovl_inode, vfs_inode);
	return BPF_CORE_READ(oi, __upperdentry) != NULL;
}

/*
 * Inspektor Gadget's helper: the path of the current task's open file descriptor `fd_num`,
 * through gadget_read_path() (so cut and walked as said there). `buf_len` must be a constant.
 * Returns the length written, or -1.
 */
static __always_inline struct file *gadget_file_of_fd(int fd_num)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct file **fds;
	struct file *f = NULL;
	unsigned int max_fds;

	if (fd_num < 0)
		return NULL;
	fds = BPF_CORE_READ(task, files, fdt, fd);
	max_fds = BPF_CORE_READ(task, files, fdt, max_fds);
	if ((unsigned int)fd_num >= max_fds)
		return NULL;
	bpf_core_read(&f, sizeof(f), &fds[fd_num]);
	return f;
}

static __always_inline long read_full_path_of_open_file_fd(int fd_num, char *buf, __u64 buf_len)
{
	struct file *file = gadget_file_of_fd(fd_num);

	if (!file)
		return -1;
	return gadget_read_path(&file->f_path, buf, buf_len);
}

#endif /* __GADGET_FILESYSTEM_H */
