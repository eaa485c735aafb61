/*
 * main: command line, signals, and handing over to the engine.
 * Exit status: 0 normal stop, 64 usage, 78 configuration, 1 anything else.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "curlmem.h"
#include "engine.h"
#include "inbox.h"
#include "log.h"
#include "proxy_link.h"
#include "proxyenv.h"
#include "url.h"

#ifndef CMDGATE_VERSION
#define CMDGATE_VERSION "0.0.0"
#endif

#define EXIT_USAGE  64
#define EXIT_CONFIG 78

static void usage(FILE *f)
{
	fputs("usage: cmdgate [-c FILE] [--log-level LEVEL]   run in the foreground\n"
	      "       cmdgate --check [-c FILE]               validate the configuration\n"
	      "       cmdgate --version | --help\n"
	      "\n"
	      "  -c, --config FILE    configuration (default /etc/cmdgate/cmdgate.conf)\n"
	      "      --log-level L    error|warn|info|debug, overrides log.level\n"
	      "      --check          print \"configuration OK\" and exit 0, or the error and 78\n",
	      f);
}

static void on_stop(int sig)
{
	(void)sig;
	inbox_signal(INBOX_STOP);
}

static void on_hup(int sig)
{
	(void)sig;
	inbox_signal(INBOX_RELOAD);
}

static void install_signals(void)
{
	struct sigaction sa = {0};
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/* An http:// AWS endpoint carries signatures and session tokens in clear. */
static void warn_cleartext(const struct config *cfg)
{
	const char *urls[] = {cfg->endpoint_url, cfg->control_url};
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		char scheme[16], host[256];
		if (urls[i] && (i == 0 || !urls[0] || strcmp(urls[i], urls[0]) != 0) &&
		    url_scheme_host(urls[i], scheme, sizeof(scheme), host, sizeof(host)) == 0 &&
		    strcmp(scheme, "http") == 0)
			log_warn("the AWS endpoint %s is http://: signatures and session tokens "
			         "travel in cleartext",
			         urls[i]);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'}, {"log-level", required_argument, NULL, 'l'},
	    {"check", no_argument, NULL, 'k'},        {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	const char *path = "/etc/cmdgate/cmdgate.conf", *level = NULL;
	int check = 0, c;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'l':
			level = optarg;
			break;
		case 'k':
			check = 1;
			break;
		case 'V':
			printf("cmdgate %s\n", CMDGATE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	enum log_level lv;
	if (optind < argc || (level && log_level_parse(level, &lv) != 0)) {
		if (optind < argc)
			fprintf(stderr, "cmdgate: unexpected argument '%s'\n", argv[optind]);
		else
			fprintf(stderr,
			        "cmdgate: --log-level must be error, warn, info or debug\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	char err[ERR_LEN];
	struct config *cfg = config_load(path, err);
	if (!cfg) {
		fprintf(stderr, "%s\n", err);
		return EXIT_CONFIG;
	}
	if (proxy_link_check_files(cfg->proxy, err) != CG_OK) {
		fprintf(stderr, "%s: %s\n", path, err);
		config_free(cfg);
		return EXIT_CONFIG;
	}
	if (check) {
		puts("configuration OK");
		config_free(cfg);
		return 0;
	}
	/* Fully buffered: the engine flushes once per loop turn (see engine_run). */
	static char logbuf[1 << 16];
	setvbuf(stderr, logbuf, _IOFBF, sizeof(logbuf));
	log_configure(cfg->log.level, cfg->log.format);
	if (level)
		log_pin_level(level); /* --log-level wins over the file, also on reload */
	proxyenv_take();              /* before Paho reads http_proxy: never for the broker */
	if (curlmem_global_init() != 0) {
		log_error("libcurl could not be initialised");
		config_free(cfg);
		return 1;
	}
	install_signals();
	log_info("cmdgate %s starting: %s, endpoint %s", CMDGATE_VERSION, cfg->mqtt.uri,
	         cfg->endpoint_url);
	warn_cleartext(cfg);
	struct engine *e = engine_new(cfg, err);
	if (!e) {
		log_error("%s", err);
		config_free(cfg);
		return 1;
	}
	int rc = engine_run(e);
	engine_free(e);
	fflush(stderr);
	curl_global_cleanup();
	return rc;
}
