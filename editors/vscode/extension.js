// A minimal VS Code client for `specc lsp`: starts the server over stdio for spec files.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("specc");
  const [command, ...args] = config.get("server.command", ["specc", "lsp"]);
  const pattern = config.get("files");
  client = new LanguageClient(
    "specc",
    "specc",
    { command, args },
    {
      documentSelector: [
        { scheme: "file", language: "yaml", pattern },
        { scheme: "file", language: "json", pattern },
      ],
    },
  );
  client.start();
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
