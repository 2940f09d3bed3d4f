/* reason-tokenize — prints the token ids of a text, space-separated on one line.
 *
 *   reason-tokenize (-m MODEL.gguf | --tokenizer DIR_OR_JSON) [TEXT | -]
 *
 * The text is taken byte for byte from the argument or from stdin ('-', also the default); no
 * BOS/EOS is added and special tokens written in the text are recognised. */
#include "cli.h"
#include "reason.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(const char *prog) {
    fprintf(stderr, "usage: %s (-m MODEL.gguf | --tokenizer DIR_OR_JSON) [TEXT | -]\n", prog);
    return 2;
}

int main(int argc, char **argv) {
    const char *prog = "reason-tokenize";
    const char *model_path = NULL, *tokenizer_path = NULL, *text_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-m") == 0 || strcmp(argv[i], "--model") == 0) && i + 1 < argc)
            model_path = argv[++i];
        else if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc)
            tokenizer_path = argv[++i];
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return usage(prog), 0;
        else if (!text_arg && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0 || argv[i][1] == '\0'))
            text_arg = argv[i];
        else
            return usage(prog);
    }
    if ((model_path != NULL) == (tokenizer_path != NULL)) return usage(prog);

    size_t len = 0;
    char *text;
    if (!text_arg || strcmp(text_arg, "-") == 0) {
        text = cli_read_stream(stdin, &len);
        if (!text) {
            fprintf(stderr, "%s: cannot read stdin\n", prog);
            return 1;
        }
    } else {
        len = strlen(text_arg);
        text = malloc(len + 1);
        if (!text) return 1;
        memcpy(text, text_arg, len + 1);
    }

    int rc = 1;
    reason_model *model = NULL;
    reason_tokenizer *own = NULL;
    const reason_tokenizer *tok = NULL;
    reason_token *ids = NULL;
    if (model_path) {
        if (reason_model_load(model_path, NULL, &model) != REASON_OK ||
            reason_model_tokenizer(model, &tok) != REASON_OK) {
            rc = cli_fail(prog, model_path);
            goto done;
        }
    } else {
        if (reason_tokenizer_load(tokenizer_path, &own) != REASON_OK) {
            rc = cli_fail(prog, tokenizer_path);
            goto done;
        }
        tok = own;
    }
    size_t n = 0;
    reason_status st = reason_tokenize(tok, text, len, REASON_TOKENIZE_PARSE_SPECIAL, NULL, 0, &n);
    if (st != REASON_OK && st != REASON_ERR_BUFFER) {
        rc = cli_fail(prog, "tokenize");
        goto done;
    }
    ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids ||
        reason_tokenize(tok, text, len, REASON_TOKENIZE_PARSE_SPECIAL, ids, n, &n) != REASON_OK) {
        rc = cli_fail(prog, "tokenize");
        goto done;
    }
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    rc = 0;
done:
    free(ids);
    reason_tokenizer_free(own);
    reason_model_free(model);
    free(text);
    return rc;
}
