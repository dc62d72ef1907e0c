/*
 * igbstorm: an exec storm. `igbstorm N WORKERS PROG [ARG...]` runs N spawns of PROG in total,
 * split over WORKERS processes, each spawning (vfork + execve) and waiting in a loop.
 * Prints "execs=<done> failed=<n> seconds=<wall> rate=<execs/s>" on stdout.
 */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	long total, workers, w, done = 0, failed = 0;
	long *results;
	double t0, t1;

	if (argc < 4) {
		fprintf(stderr, "usage: %s N WORKERS PROG [ARG...]\n", argv[0]);
		return 2;
	}
	total = atol(argv[1]);
	workers = atol(argv[2]);
	if (total <= 0 || workers <= 0)
		return 2;
	/* per worker: [done, failed] */
	results = mmap(NULL, sizeof(long) * 2 * workers, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (results == MAP_FAILED)
		return 1;
	memset(results, 0, sizeof(long) * 2 * workers);

	t0 = now();
	for (w = 0; w < workers; w++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			long n = total / workers + (w < total % workers), i;

			for (i = 0; i < n; i++) {
				pid_t child;
				int status;

				if (posix_spawn(&child, argv[3], NULL, NULL, argv + 3, environ)) {
					results[2 * w + 1]++;
					continue;
				}
				if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) ||
				    WEXITSTATUS(status)) {
					results[2 * w + 1]++;
					continue;
				}
				results[2 * w]++;
			}
			_exit(0);
		}
	}
	while (wait(NULL) > 0)
		;
	t1 = now();
	for (w = 0; w < workers; w++) {
		done += results[2 * w];
		failed += results[2 * w + 1];
	}
	printf("execs=%ld failed=%ld seconds=%.6f rate=%.1f\n", done, failed, t1 - t0,
	       done / (t1 - t0));
	return failed ? 1 : 0;
}
