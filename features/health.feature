Feature: The deployed service is healthy and publishes its scoring contract
  A release engineer promotes only a service that answers its health check and whose published
  API description is the contract its callers are built against.

  Background:
    Given the forecasting service is deployed

  @smoke
  Scenario: The service answers its health check
    When the release engineer checks the service health
    Then the service reports it is healthy

  @regression @contract
  Scenario: The published API description matches the scoring contract
    When the release engineer reads the published API description
    Then it describes the scoring route
    And the request it describes is the contract request schema
    And the answer it describes is the contract response schema
