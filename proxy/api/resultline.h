// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// One request's result as every provider's batch results are normalised to: what the client is
// answered with (status, body, request id), how it ended, and the tokens the provider says it
// used. Accounting reads the usage, the answer writer the body; each provider maps its own
// result lines into this (the OpenAI family's through fromOpenAiOutputLine()).

#include "api/jsonl.h"
#include "api/usage.h"

#include <QByteArray>
#include <QByteArrayView>
#include <QString>

#include <optional>

namespace llmproxy {

enum class ResultOutcome : quint8 {
    Succeeded, // the request ran and the provider answered 2xx
    Errored,   // it ran (or was refused) with an error answer, or failed without one
    Expired,   // it never ran: the batch's window ended first (send it again)
    Cancelled, // it never ran: the batch was cancelled first (send it again)
};

struct ResultLine {
    QByteArray customId; // the id the proxy gave the request in the batch
    ResultOutcome outcome = ResultOutcome::Errored;
    bool hasAnswer = false; // the provider gave an HTTP answer (status and body) for it
    int httpStatus = 0;     // that answer's status as the provider wrote it (0: none or invalid)
    QByteArray body;        // that answer's body, byte for byte (empty without one)
    QByteArray requestId;   // the provider's id for the call, when it gave one
    // Without an answer: the provider's code and message for what happened.
    QByteArray errorCode;
    QString errorMessage;
    Usage usage; // as the provider reported it (usage.reported false: none reported)
};

// A line of an OpenAI-family output or error file as a normalised result: a response is
// Succeeded (2xx) or Errored (with its status and body, usage read from a 2xx body); an error
// object is Expired (batch_expired), Cancelled (batch_cancelled) or Errored (anything else).
ResultLine fromOpenAiOutputLine(jsonl::OutputLine line);

} // namespace llmproxy
