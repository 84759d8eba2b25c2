// The deal record's "Content to send now" card: asks the enablement service for the deal's
// recommendations and shares one with a click. Every call goes through hubspot.fetch, which
// signs the request (X-HubSpot-Signature-v3) and adds portalId, userId and userEmail to the
// query string; the service checks the signature, the account and that the user owns the deal.
import React, { useCallback, useEffect, useState } from "react";
import {
  Alert,
  Button,
  Divider,
  Flex,
  Link,
  LoadingSpinner,
  Tag,
  Text,
  hubspot,
} from "@hubspot/ui-extensions";

// Must equal the service's PUBLIC_BASE_URL and be listed in app-hsmeta.json "permittedUrls.fetch".
const BASE_URL = "https://enablement.example.com";
// HubSpot gives a card's backend call a few seconds; the service answers in milliseconds.
const TIMEOUT_MS = 5000;

hubspot.extend(({ context, actions }) => (
  <RecommendationsCard context={context} addAlert={actions.addAlert} />
));

const errorText = async (response) => {
  try {
    const body = await response.json();
    return body.error ? body.error.message : `HTTP ${response.status}`;
  } catch (e) {
    return `HTTP ${response.status}`;
  }
};

const RecommendationsCard = ({ context, addAlert }) => {
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);
  const [links, setLinks] = useState({});
  const dealId = String(context.crm.objectId);

  const load = useCallback(async () => {
    setError(null);
    try {
      const url =
        `${BASE_URL}/integrations/hubspot/card` +
        `?associatedObjectId=${encodeURIComponent(dealId)}&associatedObjectType=DEAL`;
      const response = await hubspot.fetch(url, { method: "GET", timeout: TIMEOUT_MS });
      if (!response.ok) {
        setError(await errorText(response));
        return;
      }
      setAnswer(await response.json());
    } catch (e) {
      setError(e.message);
    }
  }, [dealId]);

  useEffect(() => {
    load();
  }, [load]);

  const share = async (item) => {
    try {
      const response = await hubspot.fetch(`${BASE_URL}${item.share.path}`, {
        method: "POST",
        timeout: TIMEOUT_MS,
        body: item.share.body,
      });
      if (!response.ok) {
        addAlert({ type: "danger", message: await errorText(response) });
        return;
      }
      const created = await response.json();
      setLinks({ ...links, [item.asset.id]: created.link });
      addAlert({ type: "success", message: "Shared: copy the trackable link into your e-mail." });
    } catch (e) {
      addAlert({ type: "danger", message: e.message });
    }
  };

  if (error) {
    return (
      <Alert title="Recommendations unavailable" variant="warning">
        {error}
      </Alert>
    );
  }
  if (!answer) {
    return <LoadingSpinner label="Finding content for this deal" />;
  }
  if (answer.message && answer.recommendations.length === 0) {
    return <Text>{answer.message}</Text>;
  }
  return (
    <Flex direction="column" gap="small">
      <Text format={{ fontWeight: "bold" }}>
        Buying stage: {answer.deal.buying_stage}
      </Text>
      {answer.recommendations.map((item) => (
        <Flex key={item.asset.id} direction="column" gap="extra-small">
          <Link href={item.asset.url}>{item.asset.title}</Link>
          <Text variant="microcopy">
            {item.asset.kind} by {item.asset.author}
            {item.exploration ? " (new, little evidence yet)" : ""}
          </Text>
          <Text variant="microcopy">{item.reasons[0]}</Text>
          {item.exploration ? <Tag variant="warning">exploration</Tag> : null}
          {links[item.asset.id] ? (
            <Text>{links[item.asset.id]}</Text>
          ) : (
            <Button size="xs" onClick={() => share(item)}>
              Share
            </Button>
          )}
          <Divider />
        </Flex>
      ))}
    </Flex>
  );
};
