/* cli.h: the subcommands, each parsing its own arguments; the return value
 * is the process exit status. */
#ifndef LT_CLI_H
#define LT_CLI_H

int cli_plan(int argc, char **argv);
int cli_gen(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_sample(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_tune(int argc, char **argv);

#endif
